"""Tests of the IDX reader and writer against the file-format specification."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from ginmi.data.idx import IDX_DTYPES, read_idx, write_idx

_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def _hand_built(array: np.ndarray, code: int) -> bytes:
    """IDX bytes built directly from the specification with ``struct``."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("kind", sorted(_CODES))
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 5), (2, 1, 3, 2)])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path: Path, kind: str, shape: tuple[int, ...], suffix: str) -> None:
    rng = np.random.default_rng(0)
    dtype = np.dtype(kind)
    if dtype.kind == "f":
        array = rng.normal(size=shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    path = write_idx(tmp_path / f"a.idx{suffix}", array)
    back = read_idx(path)
    assert back.dtype == dtype and back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable
    raw = gzip.decompress(path.read_bytes()) if suffix else path.read_bytes()
    assert raw == _hand_built(array, _CODES[kind])
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


@pytest.mark.parametrize("kind", sorted(_CODES))
def test_reads_hand_built_files(tmp_path: Path, kind: str) -> None:
    array = (np.arange(60).reshape(3, 4, 5) - 20).astype(kind)
    raw = _hand_built(array, _CODES[kind])
    (tmp_path / "raw").write_bytes(raw)
    # Compression is detected from the content, whatever the name says.
    (tmp_path / "compressed-idx3-ubyte").write_bytes(gzip.compress(raw))
    for name in ("raw", "compressed-idx3-ubyte"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), array)


def test_mnist_like_header_matches_spec(tmp_path: Path) -> None:
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / "x-images-idx3-ubyte", images)
    assert path.read_bytes()[:16] == bytes.fromhex("00000803 00000002 0000001c 0000001c")
    assert len(path.read_bytes()) == 16 + 2 * 28 * 28


def test_known_codes() -> None:
    assert sorted(IDX_DTYPES) == sorted(_CODES.values())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        read_idx(tmp_path / "nope.idx")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"" if not suffix else gzip.compress(b""))
    with pytest.raises(ValueError, match="empty|0 bytes") as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"\x01\x00\x08\x01", "not an IDX file"),
        (b"\x00\x07\x08\x01", "not an IDX file"),
        (b"\x00\x00\x0a\x01", "unknown IDX dtype code 0x0A"),
        (b"PK\x03\x04", "not an IDX file"),
    ],
)
def test_wrong_magic(tmp_path: Path, header: bytes, message: str) -> None:
    path = tmp_path / "bad"
    path.write_bytes(header + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match=message):
        read_idx(path)


def test_truncated_files(tmp_path: Path) -> None:
    raw = _hand_built(np.arange(12, dtype=np.uint8).reshape(3, 4), 0x08)
    cases = {"short-magic": raw[:3], "short-dims": raw[:6], "short-data": raw[:-1]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match="truncated") as info:
            read_idx(tmp_path / name)
        assert name in str(info.value)
    short = _hand_built(np.arange(6, dtype=np.int32), 0x0C)[:-2]
    (tmp_path / "short.gz").write_bytes(gzip.compress(short))
    with pytest.raises(ValueError, match="promises shape"):
        read_idx(tmp_path / "short.gz")
    # A gzip stream cut short is reported as a corrupt file, not an EOFError.
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw)[:-10])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        read_idx(tmp_path / "cut.gz")


def test_trailing_garbage(tmp_path: Path) -> None:
    raw = _hand_built(np.arange(4, dtype=np.uint8), 0x08)
    (tmp_path / "long").write_bytes(raw + b"junk")
    with pytest.raises(ValueError, match="4 bytes of trailing garbage"):
        read_idx(tmp_path / "long")


def test_write_rejects_unsupported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="int64 has no IDX code"):
        write_idx(tmp_path / "a", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="1 to 255 dimensions"):
        write_idx(tmp_path / "a", np.array(3, dtype=np.uint8))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_idx(tmp_path / "missing" / "a", np.zeros(3, dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "a.gz"
    write_idx(path, np.zeros(5, dtype=np.uint8))
    write_idx(path, np.ones((2, 2), dtype=np.float64))
    np.testing.assert_array_equal(read_idx(path), np.ones((2, 2)))
    assert [p.name for p in tmp_path.iterdir()] == ["a.gz"]
    # Gzip output has a fixed timestamp, so equal arrays give equal files.
    first = path.read_bytes()
    write_idx(path, np.ones((2, 2), dtype=np.float64))
    assert path.read_bytes() == first
