"""Where one training step's time goes, kernel by kernel: oneDNN's own timings of a preset's training step.

    python bench/step_profile.py                       # the default cnn preset
    python bench/step_profile.py --preset best --steps 10

Two fresh processes run the preset's real training step (its model, DigitLoss, Adam and schedule) on one
fixed batch. The first times the steps as training runs them (p50 and p99, and CPU milliseconds per step).
The second repeats them with ``ONEDNN_VERBOSE=profile_exec``, which makes oneDNN print each kernel's
execution time, and sums them per kernel. Kernels that do not depend on each other can run side by side on
the cores (a convolution's two backward kernels), so the sum can exceed the step's wall time: read the
shares. Logging slows the steps a little. Ops outside oneDNN (the element-wise ops of the loss, Adam's update,
TensorFlow's own overhead) are not itemized.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import defaultdict

from common import percentiles, run_child  # bench/ is on the path when this script runs
from digitnet.errors import ConfigError
from digitnet.presets import make_config

CHILD = """
import json, sys, time
import numpy as np
import keras
from digitnet._tf import import_tf
from digitnet.presets import IMAGE_SIZE, NUM_CLASSES, make_config
from digitnet.training import build_model

tf = import_tf()
arch, preset, steps, warm = json.loads(sys.argv[1])
cfg = make_config(arch, preset)
model = build_model(cfg, 0, steps)
rng = np.random.default_rng(0)
# The kernels' cost does not depend on the pixels.
x = rng.random((cfg.batch_size, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
y = np.zeros((cfg.batch_size, NUM_CLASSES + 1), np.float32)  # the one-hot digit, then 1: a digit
y[np.arange(cfg.batch_size), rng.integers(0, NUM_CLASSES, cfg.batch_size)] = 1
y[:, NUM_CLASSES] = 1
options = tf.data.Options()
options.autotune.enabled = False  # as training: tearing down an autotuned iterator stalls fit() for seconds
ds = tf.data.Dataset.from_tensors((x, y)).repeat().with_options(options)


class Clock(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.t = [time.perf_counter()]

    def on_train_batch_end(self, batch, logs=None):
        self.t.append(time.perf_counter())


model.fit(ds.take(warm), verbose=0)  # tracing and oneDNN's kernel creation stay out of the figures
clock, cpu = Clock(), time.process_time()
print("STEPS BEGIN", flush=True)
model.fit(ds.take(steps), verbose=0, callbacks=[clock])
print("STEPS END", flush=True)
print(json.dumps({"seconds": np.diff(clock.t).tolist(), "cpu": (time.process_time() - cpu) / steps * 1e3,
                  "batch": cfg.batch_size}))
"""

# A oneDNN problem descriptor, e.g. mb128_ic32oc64_ih13oh11kh3sh1dh0ph0_iw13ow11kw3sw1dw0pw0 -> 32->64 ch, 13->11.
_CONV = re.compile(r"ic(\d+)oc(\d+)_ih(\d+)oh(\d+)")
_POOL = re.compile(r"ic(\d+)_ih(\d+)oh(\d+)")


def _child(arch: str, preset: str, steps: int, warm: int, verbose: bool) -> tuple[dict, list[str]]:
    env = dict(os.environ, ONEDNN_VERBOSE="profile_exec") if verbose else dict(os.environ)
    proc = run_child([sys.executable, "-c", CHILD, json.dumps([arch, preset, steps, warm])], "the profiled child",
                     env=env)
    lines = proc.stdout.splitlines()
    inside = lines[lines.index("STEPS BEGIN") + 1 : lines.index("STEPS END")]
    out = json.loads(lines[-1])
    out["p50"], out["p99"] = percentiles(out.pop("seconds"))
    return out, [ln for ln in inside if ln.startswith("onednn_verbose") and ",exec," in ln]


def _label(kind: str, problem: str) -> str:
    """A short name for a kernel's problem: channels and spatial size in and out."""
    if kind == "convolution" and (m := _CONV.search(problem)):
        ic, oc, ih, oh = m.groups()
        return f"{ic}->{oc} ch, {ih}x{ih} -> {oh}x{oh}"
    if kind == "pooling" and (m := _POOL.search(problem)):
        ic, ih, oh = m.groups()
        return f"{ic} ch, {ih}x{ih} -> {oh}x{oh}"
    return re.sub(r"^mb\d+_?", "", problem) or "-"  # the batch size is in the header


def kernel_table(lines: list[str], steps: int) -> list[tuple[str, str, str, float]]:
    """(kernel, direction, problem, ms per step) from oneDNN's profile_exec lines, largest first."""
    total: dict[tuple[str, str, str], float] = defaultdict(float)
    for line in lines:
        f = line.split(",")
        # onednn_verbose,v1,primitive,exec,cpu,KIND,IMPL,DIRECTION,FORMATS,ATTRS,ALG,PROBLEM,MS
        kind, direction, problem, ms = f[5], f[7], f[-2], float(f[-1])
        if kind == "reorder":
            direction = "weights or data layout"
        total[(kind, direction, _label(kind, problem))] += ms / steps
    return sorted(((*k, v) for k, v in total.items()), key=lambda r: -r[3])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="cnn", help="(default: cnn)")
    p.add_argument("--preset", default="default", help="(default: default)")
    p.add_argument("--steps", type=int, default=20, help="profiled steps (default: 20)")
    p.add_argument("--timed-steps", type=int, default=200, help="steps timed without logging (default: 200)")
    args = p.parse_args()
    if args.steps < 1 or args.timed_steps < 1:
        p.error("--steps and --timed-steps must be at least 1")
    try:
        make_config(args.arch, args.preset)
    except ConfigError as e:
        p.error(str(e))
    timing, _ = _child(args.arch, args.preset, args.timed_steps, 30, verbose=False)
    logged, lines = _child(args.arch, args.preset, args.steps, 10, verbose=True)
    if not lines:
        raise RuntimeError("oneDNN printed no kernel timings: is TensorFlow built with oneDNN (TF_ENABLE_ONEDNN_OPTS)?")
    rows = kernel_table(lines, args.steps)
    total = sum(r[3] for r in rows)
    print(f"{args.arch} {args.preset}, batch {timing['batch']}: {timing['p50']:.2f} ms per step p50, "
          f"{timing['p99']:.2f} p99, {timing['cpu']:.1f} CPU-ms per step ({args.timed_steps} steps, no logging)")
    print(f"with oneDNN's logging: {logged['p50']:.2f} ms per step p50, {logged['cpu']:.1f} CPU-ms per step, "
          f"oneDNN kernels {total:.1f} ms summed\n")
    print("| kernel | direction | problem | ms per step | share of oneDNN |")
    print("|---|---|---|---|---|")
    for kind, direction, label, ms in rows:
        if ms >= 0.005:
            print(f"| {kind} | {direction} | {label} | {ms:.2f} | {ms / total:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
