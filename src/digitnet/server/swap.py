"""The live swap: a server of the default model follows new personal versions without a failed request.

Every :data:`~digitnet.presets.SWAP_POLL_S` seconds :class:`ModelWatcher` asks which file the default model
now is (``versions.current``). A new one is loaded beside the serving one, warmed up and verified (it
reads at least :data:`~digitnet.presets.SWAP_MIN_ACCURACY` of :data:`~digitnet.presets.SWAP_CHECK_IMAGES`
MNIST validation images), then swapped in with one assignment. Requests take the predictor once, at
their start, so those in flight finish on the old model. A version that fails is refused (logged once)
and the old one keeps serving.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from .. import config
from ..inference import Predictor
from ..models.saving import resolve_model_path, shipped_model_path
from ..presets import SWAP_CHECK_IMAGES, SWAP_MIN_ACCURACY, SWAP_POLL_S

log = logging.getLogger("digitnet.server")


def version_label(path: Path | None) -> str:
    """What ``/api/model`` and ``X-Digitnet-Model-Version`` call a model file: the personal version's
    number ("3"), "default" (the trained default), "shipped", or the file's path."""
    if path is None:
        return "in-memory"
    path = Path(path)
    if path.parent.parent == config.personal_dir() and path.parent.name.isdigit():
        return path.parent.name
    if path == config.default_model_dir() / "model.keras":
        return "default"
    return "shipped" if path == shipped_model_path() else str(path)


class ModelWatcher:
    """Polls for the default model's file and swaps ``state.predictor`` when it changes (see the module)."""

    def __init__(self, state, backend: str, poll_s: float = SWAP_POLL_S):
        self.state, self.backend, self.poll_s = state, backend, poll_s
        self.refused: set[Path] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._check: tuple[np.ndarray, np.ndarray] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="digitnet-swap", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            self._check_images()  # now, so that a swap later is quick
        except Exception:
            log.exception("cannot load the MNIST images a new model is checked on: no swap will pass")
        while not self._stop.wait(self.poll_s):
            try:
                self.check_once()
            except Exception:  # never let the watcher die: the next poll tries again
                log.exception("checking for a new model failed")

    def check_once(self) -> bool:
        """Swap if the default model changed and the new one passes; returns whether it swapped."""
        path = resolve_model_path(None)  # the file the default model is now
        if path == self.state.predictor.path or path in self.refused:
            return False
        label = version_label(path)
        try:
            candidate = Predictor.load(path, backend=self.backend)
            candidate.version = label
            candidate.warm_up()
            x, y = self._check_images()
            accuracy = float((candidate.predict(x) == y).mean())
            if accuracy < SWAP_MIN_ACCURACY:
                raise ValueError(f"it reads {accuracy:.2%} of {len(y)} MNIST validation images, under "
                                 f"{SWAP_MIN_ACCURACY:.0%}")
        except Exception as e:
            self.refused.add(path)
            log.error("model %s (version %s) refused, still serving version %s: %s", path, label,
                      self.state.predictor.version, e)
            return False
        old = self.state.predictor.version
        self.state.predictor = candidate  # one assignment: requests already running keep the old one
        log.warning("now serving model version %s (%s), was %s; %.2f%% on the swap check", label, path, old,
                    100 * accuracy)
        return True

    def _check_images(self) -> tuple[np.ndarray, np.ndarray]:
        if self._check is None:
            from ..data import load_mnist
            from ..data.mnist import split_validation

            (x_train, y_train), _ = load_mnist()
            x, y = split_validation(x_train, y_train)[1]
            self._check = x[:SWAP_CHECK_IMAGES], y[:SWAP_CHECK_IMAGES]
        return self._check
