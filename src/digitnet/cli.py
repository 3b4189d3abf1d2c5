"""The ``digitnet`` command line. It only parses arguments and formats results; the library does the work.

Heavy modules (TensorFlow, scikit-learn) are imported inside the commands, so ``digitnet --help``
and ``digitnet --version`` answer at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR",
                   help="a folder holding the four MNIST IDX files (raw or .gz) or mnist.npz "
                        "(default: $DIGITNET_DATA, else the verified cache)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where downloads are verified and kept (default: $DIGITNET_HOME/data)")


def _add_backend_arg(p: argparse.ArgumentParser) -> None:
    from .inference import BACKENDS, DEFAULT_BACKEND

    p.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help=f"inference runtime; all but tf convert the model once and cache it "
                        f"(default: {DEFAULT_BACKEND})")


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
    from .models.tutorial import TUTORIAL_LAYOUT, predict, train_parameters

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
    from .training import load_run_config, make_config, train

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
    print(f"test accuracy: {test['accuracy'] * 100:.2f}% ({test['errors']} errors in {test['n']}), "
          f"loss {test['loss']:.4f}")
    print(f"trained {sum(training['epochs'])} epochs in {training['seconds']:.1f} s "
          f"({training['wall_seconds']:.1f} s in all)")
    print(f"model: {Path(out) / 'model.keras'}")
    print(f"report: {Path(out) / 'metrics.json'} and plots in {Path(out)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import time

    from . import config, evaluation
    from .data.datasets import load
    from .inference import Predictor

    predictor = Predictor.load(args.model, backend=args.backend)
    _, (x_test, y_test), info = load(args.dataset, args.data_dir, args.cache_dir)
    probs = predictor.predict_proba(x_test, tta=args.tta)
    scores = evaluation.scores(probs, y_test, info.classes)
    report_dir = Path(args.report_dir) if args.report_dir else (
        config.reports_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(info.name).name}")
    metrics = {"model": {"file": str(predictor.path), "backend": predictor.backend, "tta": args.tta}, "test": scores,
               "dataset": {"name": info.name, "sha256": info.sha256, "classes": list(info.classes),
                           "test": len(y_test)}, "versions": evaluation.versions()}
    evaluation.write_report(report_dir, metrics, x_test, y_test, probs, info.classes)
    print(f"model: {predictor.path}")
    print(f"dataset: {info.name} ({scores['n']} test images)")
    print(f"accuracy: {scores['accuracy'] * 100:.2f}%  loss: {scores['loss']:.4f}  errors: {scores['errors']}")
    print(f"{'class':>12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    for name, c in scores["per_class"].items():
        print(f"{name:>12} {c['precision']:9.4f} {c['recall']:7.4f} {c['f1']:7.4f} {c['support']:8d}")
    print(f"report: {report_dir}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from .inference import Predictor, error_result, expand_inputs
    from .preprocessing import ImageError

    predictor = Predictor.load(args.model, backend=args.backend)
    inputs = expand_inputs(args.images)
    if not inputs:
        print("digitnet: error: no image files found", file=sys.stderr)
        return 1
    results, failed = [], False
    for item in inputs:
        try:
            source = sys.stdin.buffer.read() if item == "-" else item
            r = predictor.predict_image(source, single=args.single, top_k=args.top_k,
                                        min_confidence=args.min_confidence, file=item)
        except (ImageError, OSError) as e:
            r, failed = error_result(item, str(e)), True
        results.append(r)
        if not args.json:
            print(f"{item}: {_describe(r)}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def _describe(r: dict) -> str:
    """One line of text for one result."""
    if r["error"]:
        return f"error: {r['error']}"
    if r["digits"] is None:
        return f"no digit ({r['reason']})"
    preds = r["predictions"]
    text = r["digits"].replace("\n", " / ")
    if len(preds) == 1:
        text += f" ({preds[0]['probability'] * 100:.1f}%)"
    low = [str(p["digit"]) for p in preds if p["low_confidence"]]
    if low:
        text += f" [low confidence: {', '.join(low)}]"
    if "top_k" in preds[0] and len(preds) == 1:
        text += "  top: " + ", ".join(f"{d} {p * 100:.1f}%" for d, p in preds[0]["top_k"])
    return text


def cmd_serve(args: argparse.Namespace) -> int:
    import ipaddress
    import os

    token = args.token or os.environ.get("DIGITNET_TOKEN") or None
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and token is None:
        print(f"digitnet: warning: serving on {args.host} without a token: anyone who can reach this address "
              "can use the API (set --token or DIGITNET_TOKEN)", file=sys.stderr)
    import uvicorn

    from .inference import Predictor
    from .server import Limits, create_app

    predictor = Predictor.load(args.model, backend=args.backend)  # once, before the first request
    predictor.warm_up()
    app = create_app(predictor, token=token, cors_origin=args.cors_origin, limits=Limits(workers=args.workers))
    print(f"digitnet: serving {predictor.path} on http://{args.host}:{args.port}/ (API docs at /docs)",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_keep_alive=5)
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


def build_parser() -> argparse.ArgumentParser:
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

    tut = sub.add_parser("tutorial", help="run the original tutorial's session: train the MLP, print "
                                          "the cost per epoch and the accuracy")
    _add_data_args(tut)
    tut.add_argument("--epochs", type=int, default=20, help="(default: 20)")
    tut.add_argument("--learning-rate", type=float, default=0.005, help="(default: 0.005)")
    tut.add_argument("--batch-size", type=int, default=1000, help="(default: 1000)")
    tut.add_argument("--seed", type=int, default=1, help="initializer seed (default: 1)")
    tut.add_argument("--literal", action="store_true",
                     help="the tutorial's literal recipe: raw pixels, sigmoid output, squared error "
                          "(often stuck near 10%%; see the README)")
    tut.set_defaults(func=cmd_tutorial)

    tr = sub.add_parser("train", help="train a model into a model directory (checkpoints, report, plots)")
    tr.add_argument("--arch", choices=("tutorial", "mlp", "cnn"), default="cnn", help="(default: cnn)")
    tr.add_argument("--preset", choices=("fast", "default", "best"), default="default",
                    help="fast: ~99.0%% in one epoch; default: ~99.6%%; best: an ensemble (default: default)")
    tr.add_argument("--epochs", type=int, help="(default: from the preset)")
    tr.add_argument("--batch-size", type=int, help="(default: 128)")
    tr.add_argument("--lr", type=float, help="peak learning rate (default: 0.005)")
    tr.add_argument("--seed", type=int, help="(default: 0)")
    tr.add_argument("--ensemble", type=int, metavar="N", help="average N models (default: from the preset)")
    tr.add_argument("--dataset", default="mnist",
                    help="mnist, fashion-mnist, or a folder of the four IDX files (default: mnist)")
    _add_data_args(tr)
    tr.add_argument("--out", metavar="DIR", help="model directory (default: $DIGITNET_HOME/models/default)")
    tr.add_argument("--time-budget", type=float, metavar="SECONDS",
                    help="stop when the run has used this long, keeping the best model (default: none)")
    tr.add_argument("--deterministic", action="store_true", help="TensorFlow op determinism: same seed, same weights")
    tr.add_argument("--dry-run", action="store_true", help="a few batches only: checks the whole path quickly")
    tr.add_argument("--distribute", choices=("mirrored",),
                    help="tf.distribute.MirroredStrategy over all GPUs (2 logical CPU devices without one)")
    tr.add_argument("--init-from", metavar="MODEL", help="start from this model's weights (fine-tuning)")
    tr.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="score a saved model and write a report with plots")
    ev.add_argument("--model", metavar="DIR", help="model directory or .keras file (default: the default model)")
    ev.add_argument("--dataset", default="mnist", help="mnist, fashion-mnist, or a folder (default: mnist)")
    _add_data_args(ev)
    ev.add_argument("--report-dir", metavar="DIR",
                    help="where to write the report (default: a new folder in $DIGITNET_HOME/reports)")
    ev.add_argument("--tta", action="store_true",
                    help="test-time augmentation: average over the image and two small rotations")
    _add_backend_arg(ev)
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="read the digits in image files (any size, polarity or colour)")
    pr.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders (recursive), or - for stdin")
    pr.add_argument("--model", metavar="DIR", help="model directory or .keras file (default: the default model, "
                                                   "else the weights shipped with digitnet)")
    pr.add_argument("--json", action="store_true", help="print a JSON list, one object per input")
    pr.add_argument("--top-k", type=int, metavar="K", help="also give the K most likely digits (1-10)")
    pr.add_argument("--min-confidence", type=float, metavar="P",
                    help="flag predictions under this probability (default: calibrated with the model)")
    pr.add_argument("--single", action="store_true", help="read exactly one digit per image")
    _add_backend_arg(pr)
    pr.set_defaults(func=cmd_predict)

    sv = sub.add_parser("serve", help="serve the HTTP API and the drawing page")
    sv.add_argument("--model", metavar="DIR", help="model directory or .keras file (default: the default model)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    sv.add_argument("--port", type=int, default=8000, help="(default: 8000)")
    sv.add_argument("--workers", type=int, default=2, help="predictions running at once (default: 2)")
    sv.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on the API (default: $DIGITNET_TOKEN)")
    sv.add_argument("--cors-origin", metavar="ORIGIN", help="allow this origin to call the API (default: none)")
    _add_backend_arg(sv)
    sv.set_defaults(func=cmd_serve)

    ex = sub.add_parser("export", help="export a model for deployment and verify it on MNIST")
    ex.add_argument("--model", metavar="DIR", help="model directory or .keras file (default: the default model)")
    ex.add_argument("--format", required=True, choices=("savedmodel", "tflite", "tflite-int8", "onnx"),
                    help="savedmodel (TF Serving), tflite, tflite-int8 or onnx")
    ex.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    _add_data_args(ex)
    ex.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # Progress goes to stderr through digitnet's own logger; stdout stays for results.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("digitnet: %(message)s"))
    log = logging.getLogger("digitnet")
    log.addHandler(handler)
    log.setLevel(logging.WARNING if args.quiet else logging.INFO)
    from .data import DataUnavailableError

    try:
        return args.func(args)
    except (DataUnavailableError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"digitnet: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
