"""Personalization in one table: a handwriting style MNIST lacks, learned from 5, 10 and 20 samples per digit.

    python bench/personalize.py            # 5, 10, 20 samples per affected digit, then a 200-sample run

The style (``tests/styles.py``): a slashed 0, a 1 whose flag is almost as long as its stem, a 2 written as a
crossed "Z"; every sample varies. Each run is the real command, ``digitnet personalize``, in a fresh
``$DIGITNET_HOME`` (whole process: start-up, fine-tuning, calibration, evaluation, TFLite conversion),
timed from outside. "unseen" is 300 new samples per affected digit (another seed), read as a user sees
them: the right digit and not rejected as "not a digit". MNIST validation and test come from the run's
metrics.json (the test set is reported only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

sys.path.insert(0, str(ROOT / "tests"))
import styles  # noqa: E402  (the tests' style: one definition for tests and bench)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="5,10,20", help="samples per affected digit (default: 5,10,20)")
    p.add_argument("--unseen", type=int, default=300, help="unseen samples per affected digit (default: 300)")
    args = p.parse_args()

    import numpy as np

    from digitnet import config
    from digitnet.data import load_mnist
    from digitnet.inference import Predictor, shipped_model_path
    from digitnet.samples import SampleStore

    x_new, y_new = styles.style(args.unseen, seed=99)
    shipped = Predictor.load(shipped_model_path())
    before_unseen = styles.read_rate(shipped, x_new, y_new)
    (x_train, y_train), _ = load_mnist()
    runs = [(int(k), f"{k} per digit (x{len(styles.QUIRKY)})") for k in args.sizes.split(",")]
    runs.append((50, "200: 50 per quirky digit + 50 ordinary 7s"))
    rows = []
    for k, label in runs:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            env = {**os.environ, "DIGITNET_HOME": str(home), "DIGITNET_DATA": str(config.resolve_cache_dir(None))}
            store = SampleStore(home / "samples")
            x, y = styles.style(k, seed=1)
            if label.startswith("200"):  # a fourth digit the user writes as MNIST does (training digits)
                sevens = np.flatnonzero(y_train == 7)[:50]
                x, y = np.concatenate([x, x_train[sevens]]), np.concatenate([y, y_train[sevens]])
            for a, b in zip(x, y):
                store.add(a, int(b))
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "digitnet", "-q", "personalize"], env=env,
                                  capture_output=True, text=True)
            seconds = time.perf_counter() - t
            if proc.returncode != 0:
                rows.append((label, "failed: " + proc.stderr.strip().splitlines()[-1], "", "", "", f"{seconds:.1f}"))
                continue
            m = json.loads((home / "models" / "personal" / "1" / "metrics.json").read_text())
            pz = m["personalization"]
            after_unseen = styles.read_rate(Predictor.load(home / "models" / "personal" / "1"), x_new, y_new)
            rows.append((label, f"{before_unseen:.1%} -> {after_unseen:.1%}",
                         f"{pz['before']['user']:.0%} -> {pz['after']['user']:.0%} ({pz['held_out']})",
                         f"{pz['before']['validation']:.2%} -> {pz['after']['validation']:.2%}",
                         f"{pz['before']['test']:.2%} -> {pz['after']['test']:.2%}", f"{seconds:.1f}"))
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; style digits {styles.QUIRKY}, "
          f"{args.unseen} unseen per digit\n")
    print("| samples | unseen style | held out | MNIST validation | MNIST test | seconds (whole process) |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
