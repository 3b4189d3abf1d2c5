"""Find and load saved models: the one loader for model files, checkpoints and the shipped weights."""

from __future__ import annotations

import os
import zipfile
from importlib import resources
from pathlib import Path

from .. import config
from ..errors import ModelLoadError, ModelNotFoundError


def shipped_model_path() -> Path:
    """The default model's weights shipped inside the package."""
    return Path(str(resources.files("digitnet") / "weights" / "default.keras"))


def base_model_path() -> Path:
    """The non-personal default model: ``$DIGITNET_HOME/models/default/model.keras`` when it exists, else
    the shipped weights. ``digitnet personalize --base`` means this, so versions never compound."""
    trained = config.default_model_dir() / "model.keras"
    return trained if trained.is_file() else shipped_model_path()


def resolve_model_path(path: str | os.PathLike | None) -> Path:
    """A ``.keras`` file from a model directory, a file, or (``None``) the default model.

    ``None`` means, in order: the newest personal version fine-tuned from the current base (see
    :mod:`digitnet.versions`), the trained default model, the shipped weights. Raises
    :class:`ModelNotFoundError` when ``path`` names neither a file nor a model directory.
    """
    if path is None:
        from .. import versions

        base = base_model_path()
        personal = versions.current(base)
        return versions.personal_path(personal) if personal is not None else base
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise ModelNotFoundError(f"no model at {path} (expected a model directory or a .keras file)")
    return path


def load_model(path: str | os.PathLike | None, *, compile: bool = False, what: str = "model"):
    """Load a Keras model (directory, ``.keras`` file or ``None`` for the default) with ``safe_mode``.

    ``compile=True`` keeps the optimizer state (checkpoints). A damaged file raises
    :class:`ModelLoadError` (``what`` names it in the message: "model", "checkpoint").
    """
    import keras

    from . import layers  # noqa: F401  (registers digitnet's layers for safe_mode loading)

    file = resolve_model_path(path)
    if not zipfile.is_zipfile(file):  # Keras would say "File not found" of a damaged archive
        raise ModelLoadError(f"cannot load {what} {file}: it is not a .keras archive (damaged, truncated or another "
                             "format)")
    try:
        return keras.models.load_model(file, safe_mode=True, compile=compile)
    except Exception as e:  # Keras raises many types for damaged archives
        raise ModelLoadError(f"cannot load {what} {file}: {type(e).__name__}: {e}") from e
