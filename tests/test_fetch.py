"""Fetching with local fake sources (file:// URLs and folders); never the network."""

import gzip
import hashlib

import numpy as np
import pytest

from digitnet.data import DatasetSpec, DataUnavailableError, FileSpec, fetch_dataset, load_dataset, write_idx
from digitnet.data.fetch import ROLES, GzMirror, NpzSource, Source

NAMES = dict(zip(ROLES, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")))


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def fake(tmp_path, tiny_digits):
    """A tiny data set served three ways: a .gz mirror folder, an .npz file, and its pinned spec."""
    images, labels = tiny_digits
    arrays = dict(zip(ROLES, (images[:8], labels[:8], images[8:], labels[8:])))
    raw_dir, mirror = tmp_path / "raw", tmp_path / "mirror"
    raw_dir.mkdir()
    mirror.mkdir()
    raw_sha, gz_sha = {}, {}
    for role, name in NAMES.items():
        write_idx(raw_dir / name, arrays[role])
        raw = (raw_dir / name).read_bytes()
        (mirror / f"{name}.gz").write_bytes(gzip.compress(raw))
        raw_sha[role], gz_sha[role] = sha(raw), sha((mirror / f"{name}.gz").read_bytes())
    np.savez(tmp_path / "fake.npz", x_train=arrays["train_images"], y_train=arrays["train_labels"],
             x_test=arrays["test_images"], y_test=arrays["test_labels"])
    spec = DatasetSpec("fake", {r: FileSpec(NAMES[r], raw_sha[r]) for r in ROLES})
    return {"spec": spec, "arrays": arrays, "mirror": mirror, "gz_sha": gz_sha,
            "npz": tmp_path / "fake.npz", "npz_sha": sha((tmp_path / "fake.npz").read_bytes()),
            "cache": tmp_path / "cache"}


def cache_contents(cache):
    return sorted(p.name for p in cache.rglob("*") if p.is_file())


def test_npz_source_over_url_fills_cache(fake):
    src = NpzSource(fake["npz"].as_uri(), fake["npz_sha"])
    files = fetch_dataset(fake["spec"], [src], fake["cache"])
    assert cache_contents(fake["cache"]) == sorted(NAMES.values())
    (x_train, y_train), (x_test, y_test) = load_dataset(fake["spec"], (), cache_dir=fake["cache"])
    np.testing.assert_array_equal(x_test, fake["arrays"]["test_images"])
    np.testing.assert_array_equal(y_train, fake["arrays"]["train_labels"])
    assert files["train_images"].parent == fake["cache"] / "fake"


def test_gz_mirror_over_url_and_local_folder(fake):
    for base in (fake["mirror"].as_uri() + "/", str(fake["mirror"])):
        cache = fake["cache"] / base[-6:].strip("/")
        fetch_dataset(fake["spec"], [GzMirror(base, fake["gz_sha"])], cache)
        assert cache_contents(cache) == sorted(NAMES.values())


def test_checksum_mismatch_leaves_no_cached_file(fake):
    bad = NpzSource(fake["npz"].as_uri(), "0" * 64)
    with pytest.raises(DataUnavailableError, match="sha256 .* does not match the pinned 0000"):
        fetch_dataset(fake["spec"], [bad], fake["cache"])
    assert cache_contents(fake["cache"]) == []  # no temp file, no partial file


def test_content_that_is_not_the_pinned_data_is_rejected(fake):
    # The download verifies, but what it unpacks to is not the data set the spec pins.
    wrong = dict(fake["gz_sha"])
    spec = DatasetSpec("fake", {**fake["spec"].files, "test_labels": FileSpec(NAMES["test_labels"], "f" * 64)})
    with pytest.raises(DataUnavailableError, match="t10k-labels-idx1-ubyte: sha256"):
        fetch_dataset(spec, [GzMirror(str(fake["mirror"]), wrong)], fake["cache"])
    assert cache_contents(fake["cache"]) == []


def test_failing_source_falls_through_to_the_next(fake):
    class Broken(Source):
        def describe(self):
            return "broken source"

        def fetch(self, spec, workdir):
            (workdir / "half-written").write_bytes(b"x")
            raise OSError("connection reset")

    good = GzMirror(str(fake["mirror"]), fake["gz_sha"])
    fetch_dataset(fake["spec"], [Broken(), NpzSource("file:///nonexistent/x.npz", "0" * 64), good], fake["cache"])
    assert cache_contents(fake["cache"]) == sorted(NAMES.values())  # nothing left by the failures


def test_all_fail_error_names_every_source(fake, tmp_path):
    sources = [NpzSource("file:///nonexistent/a.npz", "0" * 64),
               GzMirror("file:///nonexistent/mirror/", fake["gz_sha"]),
               GzMirror(str(tmp_path / "empty"), fake["gz_sha"])]
    with pytest.raises(DataUnavailableError) as info:
        load_dataset(fake["spec"], tuple(sources), data_dir=tmp_path / "nope", cache_dir=fake["cache"])
    msg = str(info.value)
    for needle in ("cache ", "npz file:///nonexistent/a.npz", "mirror file:///nonexistent/mirror/",
                   f"mirror {tmp_path / 'empty'}", f"data dir {tmp_path / 'nope'}"):
        assert needle in msg
    assert msg.count("\n  - ") == 5


def test_corrupt_cache_file_is_replaced(fake):
    good = GzMirror(str(fake["mirror"]), fake["gz_sha"])
    files = fetch_dataset(fake["spec"], [good], fake["cache"])
    files["test_images"].write_bytes(b"corrupted")
    with pytest.raises(DataUnavailableError, match="t10k-images-idx3-ubyte: sha256"):
        fetch_dataset(fake["spec"], [], fake["cache"])
    assert not files["test_images"].exists()  # the bad file is gone, not kept
    fetch_dataset(fake["spec"], [good], fake["cache"])
    assert files["test_images"].exists()


def test_user_dir_is_parsed_strictly(fake, tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    for role, name in NAMES.items():
        write_idx(user / name, fake["arrays"][role])
    (x_train, _), _ = load_dataset(fake["spec"], (), data_dir=user, cache_dir=fake["cache"])
    np.testing.assert_array_equal(x_train, fake["arrays"]["train_images"])
    write_idx(user / NAMES["test_labels"], fake["arrays"]["test_labels"][:1])  # count mismatch
    with pytest.raises(DataUnavailableError, match="4 images but 1 labels"):
        load_dataset(fake["spec"], (), data_dir=user, cache_dir=fake["cache"])


def test_user_dir_from_environment(fake, tmp_path, monkeypatch):
    user = tmp_path / "env-data"
    user.mkdir()
    np.savez(user / "fake.npz", **{k: v for k, v in zip(("x_train", "y_train", "x_test", "y_test"),
                                                         fake["arrays"].values())})
    monkeypatch.setenv("DIGITNET_DATA", str(user))
    (_, y_train), _ = load_dataset(fake["spec"], (), cache_dir=fake["cache"])
    np.testing.assert_array_equal(y_train, fake["arrays"]["train_labels"])
