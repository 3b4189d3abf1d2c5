import gzip
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digitnet.data import read_idx, read_npz, write_idx
from digitnet.data.idx import check_pair


def test_round_trip(tmp_path, tiny_digits):
    images, labels = tiny_digits
    write_idx(tmp_path / "img", images)
    write_idx(tmp_path / "lab", labels)
    back = read_idx(tmp_path / "img")
    assert back.dtype == np.uint8 and back.shape == (12, 28, 28)
    np.testing.assert_array_equal(back, images)
    np.testing.assert_array_equal(read_idx(tmp_path / "lab"), labels)
    # the header is the documented one: 0x00000803, then big-endian dimensions
    assert (tmp_path / "img").read_bytes()[:16] == struct.pack(">HBBIII", 0, 8, 3, 12, 28, 28)


def test_other_dtypes_round_trip(tmp_path):
    for arr in (np.arange(6, dtype=np.int32).reshape(2, 3), np.linspace(0, 1, 5).astype(np.float32)):
        write_idx(tmp_path / "x", arr)
        np.testing.assert_array_equal(read_idx(tmp_path / "x"), arr)


def test_gzip_detected_from_content(tmp_path, tiny_digits):
    images, _ = tiny_digits
    write_idx(tmp_path / "raw", images)
    (tmp_path / "no-extension").write_bytes(gzip.compress((tmp_path / "raw").read_bytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "no-extension"), images)


def test_truncated_file(tmp_path, tiny_digits):
    write_idx(tmp_path / "img", tiny_digits[0])
    data = (tmp_path / "img").read_bytes()
    (tmp_path / "img").write_bytes(data[:-10])
    with pytest.raises(ValueError, match=r"img: file is \d+ bytes but its header"):
        read_idx(tmp_path / "img")
    (tmp_path / "img.gz").write_bytes(gzip.compress(data[:-10]))
    with pytest.raises(ValueError, match="img.gz: truncated"):
        read_idx(tmp_path / "img.gz")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(data)[:-20])  # a gzip stream cut short
    with pytest.raises(ValueError, match="cut.gz: corrupt gzip data"):
        read_idx(tmp_path / "cut.gz")


def test_trailing_bytes(tmp_path, tiny_digits):
    write_idx(tmp_path / "img", tiny_digits[0])
    with open(tmp_path / "img", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="img: file is"):
        read_idx(tmp_path / "img")


def test_wrong_magic(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x05")
    with pytest.raises(ValueError, match="bad: bad magic number 0x12340801"):
        read_idx(tmp_path / "bad")
    (tmp_path / "code").write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x05")
    with pytest.raises(ValueError, match="code: unknown IDX dtype code 0x07"):
        read_idx(tmp_path / "code")
    (tmp_path / "dims").write_bytes(b"\x00\x00\x08\x00")
    with pytest.raises(ValueError, match="dims: unsupported number of dimensions 0"):
        read_idx(tmp_path / "dims")


def test_count_mismatch(tiny_digits):
    images, labels = tiny_digits
    with pytest.raises(ValueError, match="pair: 12 images but 11 labels"):
        check_pair(images, labels[:11], "pair")
    with pytest.raises(ValueError, match="labels must lie in 0-9"):
        check_pair(images, labels + 10, "pair")


def test_npz_reader(tmp_path, tiny_digits):
    images, labels = tiny_digits
    np.savez(tmp_path / "mnist.npz", x_train=images, y_train=labels, x_test=images[:2], y_test=labels[:2])
    arrays = read_npz(tmp_path / "mnist.npz")
    np.testing.assert_array_equal(arrays["x_test"], images[:2])
    np.savez(tmp_path / "objects.npz", x_train=np.array([{}], dtype=object), y_train=labels,
             x_test=images, y_test=labels)
    with pytest.raises(ValueError, match="pickle"):  # never unpickles
        read_npz(tmp_path / "objects.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="junk.npz: not a readable .npz"):
        read_npz(tmp_path / "junk.npz")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200), gz=st.booleans(), header=st.sampled_from([b"", b"\x00\x00\x08\x03"]))
def test_fuzz_only_value_error(tmp_path, data, gz, header):
    blob = header + data
    (tmp_path / "f").write_bytes(gzip.compress(blob) if gz else blob)
    try:
        read_idx(tmp_path / "f")
    except ValueError as e:
        assert str(e).startswith("f: ")  # names the file
