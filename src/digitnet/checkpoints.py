"""Atomic, sha256-pinned per-epoch checkpoints: what ``--resume`` reads back after a crash or a ``kill -9``.

A member's checkpoint folder holds at most two ``epoch-NNNN.keras`` files (the last and the best epoch,
with optimizer state) and ``state.json``, the commit point, which pins their sha256. Writing the state
last means a crash at any moment leaves a consistent folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CheckpointError
from .fileio import atomic_write, atomic_write_json, sha256_file
from .presets import TrainConfig

STATE_VERSION = 1


@dataclass
class CheckpointState:
    """The contents of ``state.json``."""

    config: dict  # TrainConfig.to_json()
    member: int = 0
    epochs_done: int = 0
    history: list[dict] = field(default_factory=list)  # one row per epoch (loss, accuracy, val_*, seconds)
    best_epoch: int | None = None  # 1-based, by validation accuracy
    train_seconds: float = 0.0
    finished: bool = False
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    last_file: str | None = None
    best_file: str | None = None
    version: int = STATE_VERSION

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> CheckpointState:
        """Rebuild a state from JSON, checking every field's type: ``ValueError`` names the first bad one."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in ("config", "epochs_done", "files", "history", "finished") if n not in d)
        if missing:
            raise ValueError(f"missing field {missing[0]!r}")
        state = cls(**{k: v for k, v in d.items() if k in names})
        for name, kinds in _STATE_TYPES.items():
            value = getattr(state, name)
            if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
                raise ValueError(f"field {name!r} must be {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in state.files.items()):
            raise ValueError(f"field 'files' must map file names to sha256 strings, got {state.files!r}")
        if any(not isinstance(row, dict) for row in state.history):
            raise ValueError("field 'history' must be a list of objects")
        for name in ("last_file", "best_file"):
            if getattr(state, name) is not None and getattr(state, name) not in state.files:
                raise ValueError(f"field {name!r} names {getattr(state, name)!r}, which 'files' does not pin")
        if state.epochs_done and (state.last_file is None or state.best_file is None):
            raise ValueError("field 'last_file' or 'best_file' is missing after a finished epoch")
        return state

    def record(self, row: dict) -> None:
        """Add one finished epoch; ">=": on a tie the later epoch wins, having seen more of the schedule."""
        self.history.append(row)
        self.train_seconds += row["seconds"] + row.get("validation_seconds", 0.0)
        self.epochs_done = row["epoch"]
        if self.best_epoch is None or row["val_accuracy"] >= self.history[self.best_epoch - 1]["val_accuracy"]:
            self.best_epoch = row["epoch"]


_STATE_TYPES = {"config": (dict,), "member": (int,), "epochs_done": (int,), "history": (list,),
                "best_epoch": (int, type(None)), "train_seconds": (int, float), "finished": (bool,),
                "files": (dict,), "last_file": (str, type(None)), "best_file": (str, type(None)), "version": (int,)}


def new_state(cfg: TrainConfig, member: int) -> CheckpointState:
    return CheckpointState(config=cfg.to_json(), member=member)


def read_state(ckpt_dir: str | os.PathLike) -> CheckpointState:
    """Load ``state.json`` from a checkpoint folder and verify the sha256 of the files it pins."""
    state_path = Path(ckpt_dir) / "state.json"
    if not state_path.is_file():
        raise CheckpointError(f"no checkpoint to resume: {state_path} is missing")
    try:
        raw = json.loads(state_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{state_path} is corrupt: {e}") from e
    if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
        raise CheckpointError(f"{state_path} is not a digitnet checkpoint state (version {STATE_VERSION})")
    try:
        state = CheckpointState.from_json(raw)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{state_path} is corrupt: {e}") from e
    for name, digest in state.files.items():
        path = state_path.parent / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint file {path} is missing")
        if sha256_file(path) != digest:
            raise CheckpointError(f"checkpoint file {path} is corrupt or truncated (sha256 mismatch)")
    return state


def write_state(ckpt_dir: Path, state: CheckpointState) -> None:
    atomic_write_json(Path(ckpt_dir) / "state.json", state.to_json())


def save_model(model, path: Path) -> str:
    """Save a Keras model atomically; return the sha256 of what was written."""
    atomic_write(path, model.save)
    return sha256_file(path)


def save_epoch(model, ckpt_dir: Path, state: CheckpointState) -> None:
    """Write this epoch's checkpoint, then the state that points to it; drop files no longer needed."""
    name = f"epoch-{state.epochs_done:04d}.keras"
    best_name = f"epoch-{state.best_epoch:04d}.keras"
    files = {name: save_model(model, ckpt_dir / name)}
    if best_name != name:
        files[best_name] = state.files[best_name]
    state.files, state.last_file, state.best_file = files, name, best_name
    write_state(ckpt_dir, state)  # the commit point
    for old in ckpt_dir.glob("epoch-*.keras"):
        if old.name not in files:
            old.unlink()


def load_checkpoint(path: Path):
    """A checkpointed model with its optimizer state, ready to train on."""
    from .models.saving import load_model

    return load_model(path, compile=True, what="checkpoint")  # a damaged file: ModelLoadError
