"""Batch prediction with every core: `digitnet predict --jobs 1` against `--jobs N` on the same photos.

Writes N 1000x1000 JPEG photos of MNIST test digits (grey and colour, half each) to a temporary folder,
then times the whole command (start-up included) reading the folder with one job and with N, twice each
in alternation, and checks that both print the same answers.

    python bench/predict_jobs.py                    # 5,000 photos, --jobs 1 vs --jobs <cores>
    python bench/predict_jobs.py -n 500 --jobs 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import photo  # bench/ is on the path when this script runs


def main() -> int:
    from digitnet.presets import default_jobs

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=5000, help="photos (default: 5000)")
    p.add_argument("--jobs", type=int, default=default_jobs(),
                   help=f"the parallel run's jobs (default: the cores, {default_jobs()})")
    p.add_argument("--model", help="model directory or .keras file (default: the default model)")
    p.add_argument("--repeat", type=int, default=2, help="runs of each (default: 2)")
    args = p.parse_args()

    from digitnet.data import load_mnist

    (_, _), (x_test, y_test) = load_mnist()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.n):
            Path(tmp, f"{i:05d}.jpg").write_bytes(photo(x_test[i % len(x_test)], rng, colour=i % 2 == 1))
        cmd = [sys.executable, "-m", "digitnet", "-q", "predict", tmp] + (["--model", args.model] if args.model else [])
        subprocess.run(cmd[:-1] + [str(Path(tmp, "00000.jpg"))], capture_output=True, check=True)  # cache the model
        times, outputs = {1: [], args.jobs: []}, {}
        for _ in range(args.repeat):
            for jobs in times:
                t = time.perf_counter()
                out = subprocess.run(cmd + ["--jobs", str(jobs)], capture_output=True, text=True, check=True).stdout
                times[jobs].append(time.perf_counter() - t)
                outputs[jobs] = out
    lines = outputs[1].splitlines()
    correct = sum(line.split(": ")[1].startswith(str(y_test[i % len(y_test)])) for i, line in enumerate(lines))
    print(f"{args.n} photos (1000x1000 JPEG), {len(lines)} answers, {correct / len(lines):.1%} read correctly; "
          f"same answers with 1 and {args.jobs} jobs: {outputs[1] == outputs[args.jobs]}")
    print(f"| jobs | seconds (best of {args.repeat}) | files/s | vs 1 job |")
    print("|---|---|---|---|")
    base = min(times[1])
    for jobs, ts in times.items():
        print(f"| {jobs} | {min(ts):.1f} | {args.n / min(ts):.0f} | {base / min(ts):.2f}x |")
    return 0 if outputs[1] == outputs[args.jobs] else 1


if __name__ == "__main__":
    sys.exit(main())
