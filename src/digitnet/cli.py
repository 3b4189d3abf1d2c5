"""The ``digitnet`` command line. It only parses arguments and formats results; the library does the work.

Heavy modules (TensorFlow, scikit-learn) are imported inside the commands, so ``digitnet --help``
and ``digitnet --version`` answer at once.
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__

# The tutorial's defaults, repeated nowhere else in the CLI.
TUTORIAL_LAYOUT = {"l0": 784, "l1": 100, "l2": 100, "l3": 60, "l4": 10}


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR",
                   help="a folder holding the four MNIST IDX files (raw or .gz) or mnist.npz "
                        "(default: $DIGITNET_DATA, else the verified cache)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where downloads are verified and kept (default: $DIGITNET_HOME/data)")


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
    except (DataUnavailableError, ValueError, FileNotFoundError) as e:
        print(f"digitnet: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
