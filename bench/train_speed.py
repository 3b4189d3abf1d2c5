"""Time-to-accuracy on MNIST: digitnet's presets against the keras-io ``mnist_convnet`` reference.

Each run is a fresh process (imports, data loading and all), started one after another in this one
benchmark session, so the ratios compare like with like on a shared, noisy machine. After every epoch
the child evaluates the test set; that evaluation is timed and subtracted from every reported time.

    python bench/train_speed.py                                     # reference, fast x3 seeds, default, mlp
    python bench/train_speed.py --runs reference,best               # the 15-minute best preset
    python bench/train_speed.py --runs reference,default --repeat 3  # three rounds, and the median ratio
    python bench/train_speed.py --breakdown                         # where fast's and default's time goes

Prints one table row per run: seconds to reach 99.0/99.2/99.5% test accuracy, the final accuracy,
the whole-process time, and the ratio of each to the reference of its round. The reference alone varied
by 1.4x between rounds on one machine in one hour, so with ``--repeat`` it also prints the median ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from common import run_child  # bench/ is on the path when this script runs

CHILD = str(Path(__file__).with_name("train_child.py"))  # one run per fresh process

RUNS = {
    "reference": dict(arch=None, preset=None),
    "fast": dict(arch="cnn", preset="fast"),
    "default": dict(arch="cnn", preset="default"),
    "best": dict(arch="cnn", preset="best"),
    "mlp": dict(arch="mlp", preset="default"),
}
THRESHOLDS = (0.990, 0.992, 0.995)


def run_preset(name: str, seed: int, out: str) -> dict:
    spec = RUNS[name]
    args = {"run": name, "arch": spec["arch"], "preset": spec["preset"], "seed": seed, "out": out}
    start = time.time()
    proc = run_child([sys.executable, CHILD, json.dumps(args)], name)
    wall = time.time() - start
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    end = rows[-1]
    curve = [(r["t"], r["test_accuracy"]) for r in rows if "epoch" in r]
    return {
        "name": name, "seed": seed, "final": end["final"], "epochs": len(curve),
        # Whole process (interpreter start to exit) minus the benchmark's own test evaluations.
        "process": wall - end["eval_seconds"],
        # Training time: from the start of training to the end of the last epoch.
        "train": curve[-1][0] - end["fit_start"],
        # First time each threshold was reached, from the start of training for the reference and from
        # the start of the process for digitnet (the stricter clock).
        "to": {th: next((t - end["fit_start"] for t, a in curve if a >= th), None) for th in THRESHOLDS},
    }


def breakdown(presets: list[str], out: str) -> None:
    """One fresh process per preset, trained with no benchmark hook; a table of where its time went."""
    runs = {}
    for name in presets:
        args = {"run": name, "arch": "cnn", "preset": name, "seed": 0, "out": f"{out}/breakdown-{name}",
                "breakdown": True}
        start = time.time()
        proc = run_child([sys.executable, CHILD, json.dumps(args)], name)
        runs[name] = json.loads(proc.stdout.splitlines()[-1]) | {"process": time.time() - start}
        print(f"# {name}: {runs[name]['accuracy']:.4f} in {runs[name]['process']:.1f} s", file=sys.stderr)

    def row(label: str, fn) -> None:
        print(f"| {label} | " + " | ".join(fn(r) for r in runs.values()) + " |")

    def epochs(r, key):
        return [e[key] for e in r["history"]]

    def steps(r):  # each epoch's training steps, the first epoch's first step (tracing) taken out
        fit = epochs(r, "seconds")
        return [fit[0] - r["history"][0]["first_step_seconds"]] + fit[1:]

    def other(r):  # model build, dataset set-up, the time-budget bookkeeping: the members phase less the rest
        return r["phases"]["members"] - sum(epochs(r, "seconds") + epochs(r, "validation_seconds")
                                            + epochs(r, "checkpoint_seconds"))

    print("| seconds | " + " | ".join(runs) + " |")
    print("|---|" + "---|" * len(runs))
    row("interpreter start and exit",
        lambda r: f"{r['process'] - r['wall'] - r['bench_seconds'] + r['process_start_to_imports']:.2f}")
    row("imports (TensorFlow, Keras, digitnet)", lambda r: f"{r['imports']:.2f}")
    row("data load", lambda r: f"{r['phases']['data']:.2f}")
    row("pipeline build (non-digit and capture pools)", lambda r: f"{r['phases']['pools']:.2f}")
    row("model build, dataset set-up", lambda r: f"{other(r):.2f}")
    row("first step (tracing)", lambda r: f"{r['history'][0]['first_step_seconds']:.2f}")
    row("training steps, per epoch", lambda r: " ".join(f"{s:.1f}" for s in steps(r)))
    row("training steps, slowest / fastest epoch", lambda r: f"{max(steps(r)) / min(steps(r)):.2f}x")
    row("validation, all epochs", lambda r: f"{sum(epochs(r, 'validation_seconds')):.2f}")
    row("checkpoints, all epochs", lambda r: f"{sum(epochs(r, 'checkpoint_seconds')):.2f}")
    row("calibration", lambda r: f"{r['phases']['calibration']:.2f}")
    row("test evaluation", lambda r: f"{r['phases']['test']:.2f}")
    row("report and plots", lambda r: f"{r['phases']['report']:.2f}")
    row("whole process (less the benchmark's FLOP counts)", lambda r: f"{r['process'] - r['bench_seconds']:.1f}")
    def achieved(r):  # training FLOP/s over the steps alone
        return r["train_flops_per_epoch"] * len(steps(r)) / sum(steps(r))

    row("training GFLOP/s (steps only)", lambda r: f"{achieved(r) / 1e9:.1f}")
    row("large-matmul peak GFLOP/s, same process", lambda r: f"{r['peak_flops'] / 1e9:.1f}")
    row("training / peak", lambda r: f"{achieved(r) / r['peak_flops']:.1%}")
    row("test accuracy", lambda r: f"{r['accuracy']:.2%}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="reference,fast,default,mlp", help="(default: reference,fast,default,mlp)")
    p.add_argument("--seeds", default="0,1,2", help="seeds for the fast preset (default: 0,1,2)")
    p.add_argument("--out", default="/tmp/digitnet-bench",
                   help="scratch model directory (default: /tmp/digitnet-bench)")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds of all the runs, one after another; prints each ratio and their median (default: 1)")
    p.add_argument("--breakdown", action="store_true", help="instead: where the fast and default presets' time goes")
    args = p.parse_args()
    if args.repeat < 1:
        p.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.breakdown:
        breakdown(["fast", "default"], args.out)
        return 0
    results = []
    for rnd in range(1, args.repeat + 1):  # rounds in turn, so that each meets the machine's speed of its time
        for name in args.runs.split(","):
            seeds = [int(s) for s in args.seeds.split(",")] if name == "fast" else [0]
            for seed in seeds:
                r = run_preset(name, seed, f"{args.out}/{name}-{seed}") | {"round": rnd}
                results.append(r)
                print(f"# round {rnd}, {name} seed {seed}: final {r['final']:.4f}, process {r['process']:.1f} s",
                      file=sys.stderr)
    refs = {r["round"]: r for r in results if r["name"] == "reference"}
    header = ("round", "run", "seed", "epochs", "to 99.0%", "to 99.2%", "to 99.5%", "final acc", "process s",
              "vs reference")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    ratios: dict[tuple[str, int], list[float]] = {}
    for r in results:
        ref, ratio = refs.get(r["round"]), None
        if ref is not None and r is not ref:
            # fast is held to the reference's time to 99.0%, the rest to its 15 epochs (issue 14's targets)
            base = ref["to"][0.990] if r["name"] == "fast" else ref["train"]
            if base is not None:
                ratio = r["process"] / base
                ratios.setdefault((r["name"], r["seed"]), []).append(ratio)
        what = "of its time to 99.0%" if r["name"] == "fast" else "of its 15 epochs"
        cells = [str(r["round"]), r["name"], str(r["seed"]), str(r["epochs"]),
                 *(f"{r['to'][th]:.1f}" if r["to"][th] is not None else "-" for th in THRESHOLDS),
                 f"{r['final'] * 100:.2f}%", f"{r['process']:.1f}", "" if ratio is None else f"{ratio:.2f} {what}"]
        print("| " + " | ".join(cells) + " |")
    print()
    for ref in refs.values():
        print(f"round {ref['round']} reference: {ref['train']:.1f} s for 15 epochs of training, "
              f"{ref['process']:.1f} s as a process")
    if args.repeat > 1:  # one pair is at the mercy of the machine's spells: the median over rounds is the figure
        for (name, seed), rs in ratios.items():
            print(f"{name} seed {seed}: ratios {' '.join(f'{x:.2f}' for x in rs)}, median {statistics.median(rs):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
