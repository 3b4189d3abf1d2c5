"""Sweep training configs over seeds: each run a fresh `digitnet.training.train` process.

    python bench/sweep.py '[{"lr": 0.007}, {"label_smoothing": 0.05}]' --seeds 0,1,2
    python bench/sweep.py '[{"arch": "mlp", "preset": "default", "batch_size": 512}]'

Each config is a preset (``preset``, default "fast"; ``arch``, default "cnn") plus TrainConfig overrides.
Prints a table: validation / test accuracy per seed, their means, and the mean whole-process time.
Choose on the validation column; the test column only reports.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from common import run_child  # bench/ is on the path when this script runs

CHILD = """
import json, sys
from digitnet.presets import Augment, make_config
from digitnet.training import train
kw = json.loads(sys.argv[1])
arch, preset = kw.pop("arch", "cnn"), kw.pop("preset", "fast")
if "hidden" in kw:
    kw["hidden"] = tuple(kw["hidden"])
if "augment" in kw:
    kw["augment"] = Augment(**kw["augment"])
m = train(make_config(arch, preset, seed=int(sys.argv[2]), **kw), sys.argv[3])
print("RESULT", m["validation"]["accuracy"], m["test"]["accuracy"])
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", help="a JSON list of config objects")
    p.add_argument("--seeds", default="0,1,2", help="(default: 0,1,2)")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| config | " + " | ".join(f"seed {s} val / test" for s in seeds) + " | mean val | mean test "
          "| mean process s |")
    print("|---|" + "---|" * (len(seeds) + 3))
    for cfg in json.loads(args.configs):
        vals, accs, times = [], [], []
        for seed in seeds:
            with tempfile.TemporaryDirectory() as out:
                t = time.perf_counter()
                proc = run_child([sys.executable, "-c", CHILD, json.dumps(cfg), str(seed), out], f"{cfg} seed {seed}")
                times.append(time.perf_counter() - t)
            _, val, acc = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")).split()
            vals.append(float(val))
            accs.append(float(acc))
        cells = [f"{v * 100:.2f} / {a * 100:.2f}%" for v, a in zip(vals, accs)]
        print(f"| `{json.dumps(cfg)}` | " + " | ".join(cells) + f" | {sum(vals) / len(vals) * 100:.2f}% | "
              f"{sum(accs) / len(accs) * 100:.2f}% | {sum(times) / len(times):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
