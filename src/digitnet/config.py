"""Where digitnet keeps things. Every default path is decided here and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "DIGITNET_HOME"  # root of everything digitnet writes (default ~/.digitnet)
ENV_DATA = "DIGITNET_DATA"  # a directory of data files the user provides


def home() -> Path:
    """``$DIGITNET_HOME``, or ``~/.digitnet``."""
    return Path(os.environ.get(ENV_HOME) or Path.home() / ".digitnet").expanduser()


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The user-named data directory: the argument, else ``$DIGITNET_DATA``, else none."""
    if data_dir is None:
        data_dir = os.environ.get(ENV_DATA) or None
    return None if data_dir is None else Path(data_dir).expanduser()


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """The download cache: the argument, else ``home()/data``."""
    return Path(cache_dir).expanduser() if cache_dir is not None else home() / "data"


def default_model_dir() -> Path:
    """Where ``digitnet train`` writes and every ``--model`` looks by default: ``home()/models/default``."""
    return home() / "models" / "default"


def samples_dir() -> Path:
    """The user's handwriting samples (``digitnet personalize`` learns from them): ``home()/samples``."""
    return home() / "samples"


def personal_dir() -> Path:
    """Numbered personalized versions of the default model: ``home()/models/personal``."""
    return home() / "models" / "personal"


def reports_dir() -> Path:
    """Where ``digitnet evaluate`` writes reports unless told otherwise."""
    return home() / "reports"
