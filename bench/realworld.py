"""Real-world reading in one table: render families, held-out non-digits, numbers, false rejections, calibration.

    python bench/realworld.py                                  # the shipped model, MNIST test digits
    python bench/realworld.py --model DIR --split validation   # for choosing things: validation digits only

Every figure is read through the whole pipeline (``Predictor.predict_image``) with fixed seeds. The
``validation`` split is the training digits of the 46 writers every run holds out (``training.split_validation``):
use it to compare models and settings; the test split only reports. The non-digits come from the
held-out generators of ``digitnet.data.negatives`` (letters and symbols, pictograms), which training
never sees. Prints a Markdown table; ``--json`` writes the figures too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from common import ROOT

sys.path.insert(0, str(ROOT / "tests"))
import renders  # noqa: E402  (the tests' render families: one definition for tests and bench)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model directory or .keras file (default: the shipped model)")
    p.add_argument("--split", choices=("test", "validation"), default="test", help="(default: test)")
    p.add_argument("-n", type=int, default=1000, help="digits per render family (default: 1000)")
    p.add_argument("--numbers", type=int, default=300, help="numbers per number family (default: 300)")
    p.add_argument("--glyphs", type=int, default=40, help="drawings per held-out glyph (default: 40)")
    p.add_argument("--seed", type=int, default=0, help="(default: 0)")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args()

    from digitnet.data import load_mnist
    from digitnet.evaluation import ece
    from digitnet.inference import Predictor
    from digitnet.training import split_validation

    predictor = Predictor.load(args.model)
    (x_train, y_train), (x_test, y_test) = load_mnist()
    x, y = (x_test, y_test) if args.split == "test" else split_validation(x_train, y_train)[1]
    t0 = time.perf_counter()
    rows, figures = [], {"model": str(predictor.path), "split": args.split,
                         "min_digit_score": predictor.min_digit_score, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                            time.gmtime())}
    out = predictor.run(x, ("digit_score", "probabilities"))
    kept = out["digit_score"] >= predictor.min_digit_score
    mnist = {"n": len(y), "accuracy": float((out["probabilities"].argmax(1) == y).mean()),
             "rejected": float((~kept).mean()), "ece": ece(out["probabilities"], y)}
    figures["mnist"] = mnist
    rows.append(("MNIST " + args.split, mnist["n"], f"{mnist['accuracy']:.2%} (ECE {mnist['ece']:.4f})",
                 f"{mnist['rejected']:.2%} rejected"))
    for family in renders.FAMILIES:
        f = renders.score_family(predictor, family, x, y, min(args.n, len(y)), args.seed)
        figures[family] = f
        rows.append((family, f["n"], f"{f['accuracy']:.2%}", f"{f['rejected']:.2%} rejected"))
    for family in renders.NUMBER_FAMILIES:
        f = renders.score_numbers(predictor, family, x, y, args.numbers, args.seed,
                                  (2, 8) if family in ("plain", "drifting") else (3, 6))
        figures[f"numbers_{family}"] = f
        rows.append((f"numbers: {family}", f"{f['n']} ({f['digits']} digits)", f"{f['whole']:.2%} whole",
                     f"per digit {f['per_digit']:.2%} (one by one {f['one_by_one']:.2%})"))
    for name, fn in (("stacked lines", renders.score_stacked), ("overlapping pairs", renders.score_pairs)):
        f = fn(predictor, x, y, args.numbers, args.seed)
        figures[name] = f
        rows.append((name, f["n"], f"{f['whole']:.2%} whole", ""))
    for kind in ("letters", "pictograms"):
        f = renders.score_negatives(predictor, kind, args.glyphs, args.seed)
        figures[kind] = f
        worst = sorted(f["per_glyph"].items(), key=lambda kv: kv[1])[:4]
        rows.append((f"held out: {kind}", f["n"], f"{f['rejected']:.2%} rejected",
                     "worst: " + ", ".join(f"{k} {v:.0%}" for k, v in worst)))

    print(f"model {figures['model']}, {args.split} digits, min_digit_score {predictor.min_digit_score:g}, "
          f"{figures['date']}, {time.perf_counter() - t0:.0f} s\n")
    print("| case | images | result | also |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(v) for v in r) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
