"""Personal versions of the default model under ``$DIGITNET_HOME/models/personal/<n>/``, the job lock and status.

Numbered as TensorFlow Serving numbers versions. Each is built in a temp directory, then renamed to the
next number; the newest :data:`~digitnet.presets.PERSONAL_VERSIONS_KEPT` are kept. A version records the
sha256 of the base it was fine-tuned from: it stands in for the default model only while that base *is*
the default model, so a freshly trained default is never shadowed by an old personal version. No
TensorFlow here: the server reads this module to find and swap versions.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from . import config
from .errors import BusyError
from .fileio import atomic_write_json, sha256_file
from .presets import PERSONAL_VERSIONS_KEPT

STATUS_FILE = "personalize.json"
LOCK_FILE = "personalize.lock"


def versions(root: Path | None = None) -> list[int]:
    """The numbered versions present, oldest first."""
    root = root or config.personal_dir()
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir()
                  if p.name.isdigit() and (p / "model.keras").is_file() and (p / "metrics.json").is_file())


def info(version: int, root: Path | None = None) -> dict:
    """A version's metrics.json (its ``base`` and ``personalization`` sections, among others)."""
    root = root or config.personal_dir()
    return json.loads((root / str(version) / "metrics.json").read_text())


def current(base: Path, root: Path | None = None) -> int | None:
    """The newest version fine-tuned from the model file ``base`` (the current default), or None."""
    root = root or config.personal_dir()
    found = versions(root)
    if not found:
        return None
    base = sha256_file(base)
    for v in reversed(found):
        try:
            if info(v, root).get("base", {}).get("sha256") == base:
                return v
        except (OSError, ValueError):  # a damaged version is skipped, never fatal
            continue
    return None


def publish(build, root: Path | None = None) -> int:
    """Build a version with ``build(tmp_dir)``, rename it to the next number, drop the oldest beyond
    the kept count; returns the new number. Under the job lock, so numbers are never taken twice."""
    root = root or config.personal_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".building-"))
    try:
        build(tmp)
        number = max(versions(root), default=0) + 1
        os.replace(tmp, root / str(number))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    for old in versions(root)[:-PERSONAL_VERSIONS_KEPT]:
        shutil.rmtree(root / str(old), ignore_errors=True)
    return number


def reset(root: Path | None = None) -> int:
    """Remove every personal version (the samples stay); returns how many there were."""
    root = root or config.personal_dir()
    found = versions(root)
    for v in found:
        shutil.rmtree(root / str(v), ignore_errors=True)
    return len(found)


# ------------------------------------------------------------------------------ the job: lock and status


@contextlib.contextmanager
def job_lock(home: Path | None = None):
    """One personalization at a time, across processes: an exclusive lock on a file in ``home`` (default
    ``$DIGITNET_HOME``). Raises :class:`BusyError` at once when another job holds it (the lock dies with
    its process)."""
    import fcntl

    home = home or config.home()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError("a personalization job is already running") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_locked(home: Path | None = None) -> bool:
    """Whether a job holds the lock now."""
    try:
        with job_lock(home):
            return False
    except BusyError:
        return True


def write_status(home: Path | None = None, **fields) -> None:
    """Merge ``fields`` into the job's status file in ``home`` (default ``$DIGITNET_HOME``), which every
    server process reads."""
    path = (home or config.home()) / STATUS_FILE
    status = read_status(home)
    status.update(fields, updated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, status)


def read_status(home: Path | None = None) -> dict:
    """``{"state", "progress", "before", "after", "version", "error"}``; "idle" when no job ever ran. A
    "running" job whose lock is free died without saying so: it reads "failed"."""
    status = {"state": "idle", "progress": 0.0, "before": None, "after": None, "version": None, "error": None}
    with contextlib.suppress(OSError, ValueError):
        status.update(json.loads(((home or config.home()) / STATUS_FILE).read_text()))
    if status["state"] == "running" and not is_locked(home):
        status.update(state="failed", error=status.get("error") or "the job stopped before it finished")
    return status


def personal_path(version: int) -> Path:
    """A version's model file."""
    return config.personal_dir() / str(version) / "model.keras"
