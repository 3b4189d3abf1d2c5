"""The ``digitnet`` command line. It only parses arguments and formats results; the library does the work.

Heavy modules (TensorFlow, scikit-learn) are imported inside the commands, so ``digitnet --help``
and ``digitnet --version`` answer at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

from . import presets
from ._version import __version__
from .errors import DigitnetError

EX_SOFTWARE = 70  # sysexits.h: an internal software error (a bug), so scripts can tell it from bad input


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR",
                   help="a folder holding the four MNIST IDX files (raw or .gz) or mnist.npz "
                        "(default: $DIGITNET_DATA, else the verified cache)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where downloads are verified and kept (default: $DIGITNET_HOME/data)")


def _add_backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=presets.BACKENDS, default=presets.DEFAULT_BACKEND,
                   help="inference runtime: " + "; ".join(f"{k}: {v}" for k, v in presets.BACKEND_HELP.items())
                        + f" (default: {presets.DEFAULT_BACKEND})")


def _add_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="DIR", help="model directory or .keras file (default: the trained default "
                                                  "model, else the weights shipped with digitnet)")


def expand_inputs(inputs: list[str]) -> tuple[list[str], dict[str, str]]:
    """Files as given, folders recursively (image files only, sorted), and "-" for stdin; plus the
    folders that could not be read, each with the reason (reported, never skipped silently)."""
    import os

    from .preprocessing import IMAGE_SUFFIXES

    out, unreadable = [], {}
    for item in inputs:
        if item == "-" or not Path(item).is_dir():
            out.append(item)
            continue

        def failed(e: OSError, top: str = item) -> None:
            unreadable[str(e.filename or top)] = f"cannot read this folder ({e.strerror or e})"

        found = []
        for root, dirs, files in os.walk(item, onerror=failed):
            dirs.sort()
            found += [os.path.join(root, f) for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES]
        out += sorted(found)
    return out, unreadable


# argparse types: a bad value is a usage error (exit 2) with argparse's message, before any work starts.


def _int_in(low: int, high: int | None = None):
    """A whole number in [low, high] (no upper bound without ``high``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            wanted = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {value}")
        return value

    return parse


def _float_in(low: float, high: float | None = None, *, low_open: bool = False):
    """A finite float in [low, high] (or above ``low`` with ``low_open``)."""
    def parse(text: str) -> float:
        import math

        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            wanted = f"in [{low:g}, {high:g}]" if high is not None else f"{'>' if low_open else '>='} {low:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number {wanted}, got {text}")
        return value

    return parse


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from . import config
    from .data import MNIST, read_dir
    from .data.fetch import fetch_dataset
    from .data.mnist import MNIST_SOURCES

    data_dir = config.resolve_data_dir(args.data_dir)
    if data_dir is not None:
        (x_train, _), (x_test, _) = read_dir(data_dir)  # strict parse; raises with the reason
        print(f"mnist: {len(x_train)} train + {len(x_test)} test images, parsed from {data_dir}")
        return 0
    files = fetch_dataset(MNIST, MNIST_SOURCES, config.resolve_cache_dir(args.cache_dir))
    print(f"mnist: verified (sha256) in {files['train_images'].parent}")
    for path in files.values():
        print(f"  {path}")
    return 0


def cmd_tutorial(args: argparse.Namespace) -> int:
    from .data import load_tutorial_split
    from .models.tutorial import predict, train_parameters
    from .presets import TUTORIAL_LAYOUT

    X_train, X_test, y_train, y_test = load_tutorial_split(args.data_dir, args.cache_dir)
    print(f"X_train {X_train.shape}, X_test {X_test.shape}, y_train {y_train.shape}, y_test {y_test.shape}")
    print(f"layout = {TUTORIAL_LAYOUT}")
    literal = {"cost": "mse", "scale_inputs": False} if args.literal else {}
    parameters = train_parameters(
        X_train, y_train, X_test, y_test, TUTORIAL_LAYOUT,
        learning_rate=args.learning_rate, epochs=args.epochs, batch_size=args.batch_size,
        seed=args.seed, **literal,
    )
    print(f"Predicted label: {predict(X_test[2], parameters)[0]}")
    print(f"Actual label: {list(y_test[2]).index(1)}")
    print(f"predict(X_test, parameters) = {predict(X_test, parameters)!r}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from . import config
    from .presets import make_config
    from .training import load_run_config, train

    if args.resume:
        cfg, out = load_run_config(args.resume), args.resume
    else:
        cfg = make_config(
            args.arch, args.preset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
            dataset=args.dataset, ensemble=args.ensemble, time_budget=args.time_budget,
            deterministic=args.deterministic or None, dry_run=args.dry_run or None, distribute=args.distribute,
        )
        out = args.out or config.default_model_dir()
    metrics = train(cfg, out, resume=bool(args.resume), data_dir=args.data_dir, cache_dir=args.cache_dir,
                    init_from=args.init_from)
    test, training = metrics["test"], metrics["training"]
    cluster = training.get("cluster")
    if cluster and not cluster["chief"]:  # the chief wrote the model directory; this worker's copy is gone
        print(f"worker {cluster['task']} of {cluster['workers']} done: trainable weights sha256 "
              f"{cluster['weights_sha256']} (the chief's model is in {out})")
        return 0
    print(f"test accuracy: {test['accuracy'] * 100:.2f}% ({test['errors']} errors in {test['n']}), "
          f"loss {test['loss']:.4f}, ECE {test['ece']:.4f} (temperature {metrics['calibration']['temperature']:.3f}), "
          f"false rejection {test['false_rejection'] * 100:.2f}%")
    print(f"trained {sum(training['epochs'])} epochs in {training['seconds']:.1f} s "
          f"({training['wall_seconds']:.1f} s in all)")
    print(f"model: {Path(out) / 'model.keras'}")
    print(f"report: {Path(out) / 'metrics.json'} and plots in {Path(out)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data.datasets import load
    from .evaluation import default_report_dir, evaluate
    from .inference import Predictor

    predictor = Predictor.load(args.model, backend=args.backend)
    _, test, info = load(args.dataset, args.data_dir, args.cache_dir)
    report_dir = Path(args.report_dir) if args.report_dir else default_report_dir(info.name)
    scores = evaluate(predictor, test, info, report_dir, tta=args.tta)["test"]
    print(f"model: {predictor.path}")
    print(f"dataset: {info.name} ({scores['n']} test images)")
    print(f"accuracy: {scores['accuracy'] * 100:.2f}%  loss: {scores['loss']:.4f}  errors: {scores['errors']}  "
          f"ECE: {scores['ece']:.4f}  false rejection: {scores['false_rejection'] * 100:.2f}% (digit score under "
          f"{predictor.min_digit_score:g})")
    print(f"{'class':>12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    for name, c in scores["per_class"].items():
        print(f"{name:>12} {c['precision']:9.4f} {c['recall']:7.4f} {c['f1']:7.4f} {c['support']:8d}")
    print(f"report: {report_dir}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from .batch import read_files
    from .inference import Predictor
    from .preprocessing import MAX_BYTES
    from .results import Reading

    predictor = Predictor.load(args.model, backend=args.backend)
    inputs, unreadable = expand_inputs(args.images)
    if not inputs and not unreadable:
        print("digitnet: error: no image files found", file=sys.stderr)
        return 1
    results, failed = [], bool(unreadable)
    for folder, why in unreadable.items():
        results.append(Reading.failed(folder, why).to_dict())
        if not args.json:
            print(f"{folder}: {_describe(results[-1])}", flush=True)
    # stdin: at most the cap plus one byte, so that an endless stream is refused, not read.
    sources = [sys.stdin.buffer.read(MAX_BYTES + 1) if item == "-" else item for item in inputs]
    for reading in read_files(predictor, sources, names=inputs, jobs=args.jobs, single=args.single,
                              top_k=args.top_k, min_confidence=args.min_confidence,
                              min_digit_score=args.min_digit_score):
        r = reading.to_dict()
        failed = failed or r["error"] is not None
        results.append(r)
        if not args.json:
            print(f"{r['file']}: {_describe(r)}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def _describe(r: dict) -> str:
    """One line of text for one result."""
    if r["error"]:
        return f"error: {r['error']}"
    if r["digits"] is None:
        return f"no digit ({r['reason']})"
    preds, rejected = r["predictions"], len(r["rejected"])
    text = r["digits"].replace("\n", " / ")
    notes = [f"{preds[0]['probability'] * 100:.1f}%"] if len(preds) == 1 else []
    if rejected:
        notes.append(f"{rejected} mark{'s' if rejected > 1 else ''} not a digit")
    if notes:
        text += f" ({', '.join(notes)})"
    low = [str(p["digit"]) for p in preds if p["low_confidence"]]
    if low:
        text += f" [low confidence: {', '.join(low)}]"
    if "top_k" in preds[0] and len(preds) == 1:
        text += "  top: " + ", ".join(f"{d} {p * 100:.1f}%" for d, p in preds[0]["top_k"])
    return text


def cmd_explain(args: argparse.Namespace) -> int:
    import json

    from .inference import Predictor

    predictor = Predictor.load(args.model, backend=args.backend)
    reading = predictor.predict_image(args.image, explain=True, target=args.target, file=args.image)
    if args.json:
        print(json.dumps(reading.to_dict(layer_values=True)))
        return 0
    if not reading.predictions:
        print(f"{args.image}: no digit ({reading.reason}): nothing to explain")
        return 0
    from . import plots
    from .preprocessing import decode

    pixels = decode(args.image)  # (h, w, c) in [0, 1], for the crops
    out = Path(args.out) if args.out else Path(f"{Path(args.image).stem}.explain.png")
    n = len(reading.predictions)
    for i, pred in enumerate(reading.predictions, 1):
        x, y, w, h = pred.box
        crop = pixels[y : y + h, x : x + w, :3] if pixels.shape[2] >= 3 else pixels[y : y + h, x : x + w, 0]
        path = out if n == 1 else out.with_name(f"{out.stem}-{i}{out.suffix}")
        e = pred.explanation
        plots.explanation(crop, e, path, f"{Path(args.image).name}: digit {i} of {n} read as {pred.digit} "
                                         f"({pred.probability:.1%}), explaining {e['target']}")
        print(f"{args.image}: digit {i} of {n}: {pred.digit} ({pred.probability:.1%}) -> {path}", flush=True)
    return 0


def cmd_personalize(args: argparse.Namespace) -> int:
    import dataclasses

    from . import config, versions

    root = config.personal_dir()
    if args.list:
        found = versions.versions(root)
        if not found:
            print(f"no personal versions in {root}")
        live = versions.current(_base_path(None))
        for v in found:
            p = versions.info(v, root)["personalization"]
            b, a = p["before"], p["after"]
            n = p["learned_from"] + p["held_out"]
            print(f"{v}{' (in use)' if v == live else ''}: {root / str(v)}  samples {n}, "
                  f"yours {b['user']:.0%} -> {a['user']:.0%}, MNIST validation {b['validation']:.2%} -> "
                  f"{a['validation']:.2%}, test {b['test']:.2%} -> {a['test']:.2%}")
        return 0
    if args.reset:
        print(f"removed {versions.reset(root)} personal versions from {root}; the samples stay in "
              f"{config.samples_dir()}")
        return 0
    from .personalize import personalize, run_job
    from .presets import PersonalizeConfig
    from .samples import SampleStore, load_folder

    samples = load_folder(args.samples) if args.samples else SampleStore().load()
    cfg = dataclasses.replace(PersonalizeConfig(), **{k: v for k, v in (("epochs", args.epochs), ("seed", args.seed))
                                                      if v is not None})
    base = _base_path(args.base)

    def show(fraction: float, what: str) -> None:
        print(f"[{fraction:4.0%}] {what}", file=sys.stderr, flush=True)

    if args.out:
        metrics = personalize(samples, base, Path(args.out), cfg, data_dir=args.data_dir, cache_dir=args.cache_dir,
                              progress=show)
        where = Path(args.out)
    else:
        number, metrics = run_job(samples, base, cfg, data_dir=args.data_dir, cache_dir=args.cache_dir, progress=show)
        where = root / str(number)
        print(f"version {number}")
    p = metrics["personalization"]
    b, a = p["before"], p["after"]
    print(f"your held-out samples: {b['user']:.1%} -> {a['user']:.1%} ({p['held_out']} held out, "
          f"{p['learned_from']} learned from)")
    print(f"MNIST validation: {b['validation']:.2%} -> {a['validation']:.2%} (gate {p['gate']:.2%}); "
          f"test: {b['test']:.2%} -> {a['test']:.2%}")
    print(f"model: {where / 'model.keras'} ({p['seconds']} s)")
    return 0


def _base_path(base: str | None) -> Path:
    """``--base``: a model given, else the non-personal default (never a personal version)."""
    from .models.saving import base_model_path, resolve_model_path

    return resolve_model_path(base) if base else base_model_path()


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from .server.serving import default_allowed_hosts, is_loopback

    token = args.token or os.environ.get("DIGITNET_TOKEN") or None
    if not is_loopback(args.host) and token is None:
        print(f"digitnet: warning: serving on {args.host} without a token: anyone who can reach this address "
              "can use the API (set --token or DIGITNET_TOKEN)", file=sys.stderr)
    hosts = args.allowed_hosts.split(",") if args.allowed_hosts else default_allowed_hosts(args.host)
    if hosts == ["*"]:
        print(f"digitnet: warning: serving on {args.host} without checking the Host header (set --allowed-hosts "
              "to the names clients use, against DNS rebinding)", file=sys.stderr)
    from .presets import Limits

    # Learning endpoints would let anyone who reaches the server retrain it: only on loopback, or with a token.
    settings = dict(token=token, cors_origin=args.cors_origin, allowed_hosts=hosts, workers=args.workers,
                    learning=is_loopback(args.host) or token is not None, watch=args.model is None,
                    model=args.model, backend=args.backend)
    if args.processes > 1:  # each process loads its own model: the settings travel to them, not the model
        from .server.serving import serve_processes

        print(f"digitnet: serving on http://{args.host}:{args.port}/ with {args.processes} processes (API docs at "
              "/docs)", file=sys.stderr, flush=True)
        serve_processes(settings, args.host, args.port, args.processes, Limits().request_timeout_s)
        return 0
    from .server.serving import build_app, serve

    app, predictor = build_app(settings)
    print(f"digitnet: serving {predictor.path} on http://{args.host}:{args.port}/ (API docs at /docs)",
          file=sys.stderr, flush=True)
    serve(app, args.host, args.port, Limits().request_timeout_s)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    f = export(args.model, args.format, args.out, data_dir=args.data_dir, cache_dir=args.cache_dir)
    print(f"exported {f['format']}: {f['path']} ({f['bytes']:,} bytes)")
    print(f"verified on {f['n']} MNIST test images: accuracy {f['test_accuracy'] * 100:.2f}% "
          f"(Keras {f['keras_test_accuracy'] * 100:.2f}%), argmax agreement {f['argmax_agreement'] * 100:.2f}%, "
          f"max |dp| {f['max_abs_diff']:.2e}")
    print(f"model card: {Path(args.out) / 'MODEL_CARD.md'}")
    return 0


def _train_epilog() -> str:
    """Every preset and what it sets, read from ``digitnet.presets``."""
    lines = ["presets (each sets only what differs from the defaults above):"]
    for arch, table in presets.PRESETS.items():
        for name in table:
            note = presets.PRESET_NOTES.get((arch, name))
            lines.append(f"  {arch} {name}: {presets.describe_preset(arch, name)}" + (f"  [{note}]" if note else ""))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    d = presets.default_for
    parser = argparse.ArgumentParser(
        prog="digitnet",
        description="Recognize handwritten digits with neural networks in TensorFlow 2.",
    )
    parser.add_argument("--version", action="version", version=f"digitnet {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print results and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = sub.add_parser("data", help="fetch and verify data sets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    fetch = data_sub.add_parser("fetch", help="fetch MNIST, verify its sha256 and print where it is")
    _add_data_args(fetch)
    fetch.set_defaults(func=cmd_data_fetch)

    t = presets.TUTORIAL
    tut = sub.add_parser("tutorial", help="run the original tutorial's session: train the MLP, print "
                                          "the cost per epoch and the accuracy")
    _add_data_args(tut)
    tut.add_argument("--epochs", type=_int_in(0), default=t["epochs"], help=f"(default: {t['epochs']})")
    tut.add_argument("--learning-rate", type=_float_in(0, low_open=True), default=t["learning_rate"],
                     help=f"(default: {t['learning_rate']})")
    tut.add_argument("--batch-size", type=_int_in(1), default=t["batch_size"],
                     help=f"(default: {t['batch_size']})")
    tut.add_argument("--seed", type=int, default=t["seed"], help=f"initializer seed (default: {t['seed']})")
    tut.add_argument("--literal", action="store_true",
                     help="the tutorial's literal recipe: raw pixels, sigmoid output, squared error "
                          "(often stuck near 10%%; see the README)")
    tut.set_defaults(func=cmd_tutorial)

    tr = sub.add_parser("train", help="train a model into a model directory (checkpoints, report, plots)",
                        epilog=_train_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--arch", choices=presets.ARCHS, default=presets.DEFAULT_ARCH,
                    help=f"(default: {presets.DEFAULT_ARCH})")
    tr.add_argument("--preset", choices=presets.PRESET_NAMES, default=presets.DEFAULT_PRESET,
                    help=f"what each sets is listed below (default: {presets.DEFAULT_PRESET})")
    tr.add_argument("--epochs", type=_int_in(1), help=f"(default: {d('epochs')})")
    tr.add_argument("--batch-size", type=_int_in(1), help=f"(default: {d('batch_size')})")
    tr.add_argument("--lr", type=_float_in(0, low_open=True),
                    help=f"peak learning rate of the one-cycle schedule (default: {d('lr')})")
    tr.add_argument("--seed", type=int, help=f"(default: {d('seed')})")
    tr.add_argument("--ensemble", type=_int_in(1), metavar="N",
                    help=f"average N models (default: {d('ensemble')})")
    tr.add_argument("--dataset", default=presets.TrainConfig.dataset,
                    help=f"mnist, fashion-mnist, or a folder of the four IDX files or of class subfolders 0/ ... 9/ "
                         f"(default: {presets.TrainConfig.dataset})")
    _add_data_args(tr)
    tr.add_argument("--out", metavar="DIR", help="model directory (default: $DIGITNET_HOME/models/default)")
    tr.add_argument("--time-budget", type=_float_in(0, low_open=True), metavar="SECONDS",
                    help=f"stop when the run has used this long, keeping the best model (default: "
                         f"{d('time_budget')})")
    tr.add_argument("--deterministic", action="store_true", help="TensorFlow op determinism: same seed, same weights")
    tr.add_argument("--dry-run", action="store_true", help="a few batches only: checks the whole path quickly")
    tr.add_argument("--distribute", choices=presets.DISTRIBUTIONS,
                    help="mirrored: tf.distribute.MirroredStrategy over all GPUs (2 logical CPU devices without one); "
                         "multiworker: MultiWorkerMirroredStrategy over the cluster in $TF_CONFIG (the README's "
                         "recipe)")
    tr.add_argument("--init-from", metavar="MODEL", help="start from this model's weights (fine-tuning)")
    tr.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="score a saved model and write a report with plots")
    _add_model_arg(ev)
    ev.add_argument("--dataset", default=presets.TrainConfig.dataset,
                    help=f"mnist, fashion-mnist, or a folder (default: {presets.TrainConfig.dataset})")
    _add_data_args(ev)
    ev.add_argument("--report-dir", metavar="DIR",
                    help="where to write the report (default: a new folder in $DIGITNET_HOME/reports)")
    ev.add_argument("--tta", action="store_true",
                    help="test-time augmentation: average over the image and rotations by "
                         + ", ".join(f"{a:+g}" for a in presets.TTA_ANGLES) + " degrees")
    _add_backend_arg(ev)
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="read the digits in image files (any size, polarity or colour)")
    pr.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders (recursive), or - for stdin")
    _add_model_arg(pr)
    pr.add_argument("--json", action="store_true", help="print a JSON list, one object per input")
    pr.add_argument("--top-k", type=_int_in(1, presets.NUM_CLASSES), metavar="K",
                    help="also give the K most likely digits (1-10)")
    pr.add_argument("--min-confidence", type=_float_in(0.0, 1.0), metavar="P",
                    help="flag predictions under this probability (default: calibrated with the model, else "
                         f"{presets.DEFAULT_MIN_CONFIDENCE})")
    pr.add_argument("--min-digit-score", type=_float_in(0.0, 1.0), metavar="P",
                    help="a mark scoring under this is 'not a digit' and is not read; 0 reads every mark "
                         "(default: calibrated with the model, else "
                         f"{presets.DEFAULT_MIN_DIGIT_SCORE:g})")
    pr.add_argument("--single", action="store_true", help="read exactly one digit per image")
    cores = presets.default_jobs()
    pr.add_argument("--jobs", type=_int_in(1, 256), default=cores, metavar="N",
                    help=f"processes that decode and preprocess, with more than {presets.POOL_MIN_FILES} files "
                         f"(default: the number of cores, here {cores})")
    _add_backend_arg(pr)
    pr.set_defaults(func=cmd_predict)

    xp = sub.add_parser("explain", help="show why the model reads each digit of an image as it does: saliency "
                                        "and what each layer sees, as a figure per digit")
    xp.add_argument("image", metavar="IMAGE", help="an image file (any size, polarity or colour)")
    _add_model_arg(xp)
    xp.add_argument("--target", type=_int_in(0, presets.NUM_CLASSES - 1), metavar="D",
                    help="explain digit D for every mark (default: the digit read)")
    xp.add_argument("--out", metavar="FILE.png", help="the figure; with several digits FILE-1.png, FILE-2.png, ... "
                                                      "(default: IMAGE's name with .explain.png, here)")
    xp.add_argument("--json", action="store_true", help="print the numbers (saliency maps, activations) as JSON "
                                                        "instead of drawing")
    _add_backend_arg(xp)
    xp.set_defaults(func=cmd_explain)

    pz = sub.add_parser("personalize", help="fine-tune the default model on your handwriting samples into a new "
                                            "personal version (it then answers by default)")
    pz.add_argument("--samples", metavar="DIR", help="images in subfolders 0/ ... 9/ (default: the samples saved from "
                                                     "the page, in $DIGITNET_HOME/samples)")
    pz.add_argument("--base", metavar="MODEL", help="the model to fine-tune (default: the default model, never a "
                                                    "personal version)")
    pz.add_argument("--out", metavar="DIR", help="write the model here instead of publishing a new version in "
                                                 "$DIGITNET_HOME/models/personal/")
    pz.add_argument("--epochs", type=_int_in(1, 100), help=f"(default: {presets.PersonalizeConfig().epochs})")
    pz.add_argument("--seed", type=int, help=f"(default: {presets.PersonalizeConfig().seed})")
    pz.add_argument("--list", action="store_true", help="list the personal versions and exit")
    pz.add_argument("--reset", action="store_true", help="remove every personal version (the samples stay) and exit")
    _add_data_args(pz)
    pz.set_defaults(func=cmd_personalize)

    limits = presets.Limits()
    sv = sub.add_parser("serve", help="serve the HTTP API and the drawing page")
    _add_model_arg(sv)
    sv.add_argument("--host", default=presets.SERVE_HOST,
                    help=f"address to bind (default: {presets.SERVE_HOST}, loopback only)")
    sv.add_argument("--port", type=_int_in(1, 65535), default=presets.SERVE_PORT,
                    help=f"(default: {presets.SERVE_PORT})")
    sv.add_argument("--workers", type=_int_in(1, 64), default=limits.workers,
                    help=f"predictions running at once in each process (default: {limits.workers})")
    sv.add_argument("--processes", type=_int_in(1, 64), default=presets.SERVE_PROCESSES,
                    help="server processes on the one port, each with its own model, limits and queue "
                         f"(default: {presets.SERVE_PROCESSES})")
    sv.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on the API (default: $DIGITNET_TOKEN)")
    sv.add_argument("--cors-origin", metavar="ORIGIN", help="allow this origin to call the API (default: none)")
    sv.add_argument("--allowed-hosts", metavar="H1,H2",
                    help="Host header values to accept, against DNS rebinding; * accepts any (default: the loopback "
                         "names when serving on loopback, else the --host address)"),
    _add_backend_arg(sv)
    sv.set_defaults(func=cmd_serve)

    ex = sub.add_parser("export", help="export a model for deployment and verify it on MNIST")
    _add_model_arg(ex)
    ex.add_argument("--format", required=True, choices=presets.FORMATS,
                    help="; ".join(f"{k}: {v}" for k, v in presets.FORMAT_HELP.items()))
    ex.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    _add_data_args(ex)
    ex.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status: 0 ok, 1 a clear error, 2 usage, 70 a bug."""
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit 2 here
    if args.command is None:
        parser.print_help()
        return 2
    # Progress goes to stderr through digitnet's own logger; stdout stays for results.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("digitnet: %(message)s"))
    log = logging.getLogger("digitnet")
    log.addHandler(handler)
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        return args.func(args)
    except DigitnetError as e:
        print(f"digitnet: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the machine said no (disk full, permission denied): not a bug in digitnet
        print(f"digitnet: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        print(f"digitnet: internal error: this is a bug in digitnet {__version__}; please report it with the "
              "traceback above", file=sys.stderr)
        return EX_SOFTWARE


def entry() -> int:
    """The `digitnet` command (and `python -m digitnet`): :func:`main`, then a fast exit.

    After TensorFlow has been imported, the interpreter's final garbage collection walks its whole object
    graph: about 1.1 s of every such command on 2 cores. Freezing the objects skips that walk; the exit
    stays an ordinary one (atexit handlers run, files were already closed). Not in :func:`main`, which
    tests call in-process.
    """
    status = main()
    if "tensorflow" in sys.modules:
        import gc

        gc.freeze()
    return status


if __name__ == "__main__":
    sys.exit(entry())
