"""Reader and writer for the IDX file format used by MNIST, EMNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number followed by the dimensions and the data,
everything big-endian::

    byte 0, 1   0x00 0x00
    byte 2      dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte 3      number of dimensions ``ndim``
    ndim x 4    each dimension as a big-endian unsigned 32-bit integer
    rest        the values, C order, big-endian

Files may be gzip-compressed; compression is detected from the gzip magic bytes
(``1f 8b``), not from the file name, so ``foo-idx3-ubyte`` holding gzip data is
read correctly. :func:`write_idx` compresses when the target name ends in
``.gz`` and replaces the target atomically.
"""

from __future__ import annotations

__all__ = ["IDX_DTYPES", "read_idx", "write_idx"]

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ginmi.io import atomic_open

#: IDX dtype code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_CODES: dict[np.dtype, int] = {dt.newbyteorder("="): c for c, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_HEADER = struct.Struct(">BBBB")
_DIM = struct.Struct(">I")


def _read_bytes(path: Path) -> bytes:
    """Return the (decompressed) contents of ``path``.

    Parameters
    ----------
    path : Path
        File to read; gzip data is recognised by its magic bytes.

    Returns
    -------
    bytes
        The raw IDX bytes.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is empty or its gzip stream is corrupt or truncated.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"IDX file {str(path)!r} does not exist (or is not a regular file); "
            "check the path or the data directory you passed"
        )
    data = path.read_bytes()
    if not data:
        raise ValueError(
            f"IDX file {str(path)!r} is empty (0 bytes); the download or copy probably "
            "failed: delete it and fetch it again"
        )
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        data = gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as exc:
        raise ValueError(
            f"IDX file {str(path)!r} is gzip-compressed but the gzip stream is corrupt or "
            f"truncated ({exc}); delete it and fetch it again"
        ) from exc
    if not data:
        raise ValueError(f"IDX file {str(path)!r} decompresses to 0 bytes; delete it and fetch it again")
    return data


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a NumPy array.

    Parameters
    ----------
    path : str or os.PathLike
        The IDX file. Gzip compression is detected from the content.

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order with the shape given by the header
        and the dtype given by the dtype code (uint8, int8, int16, int32, float32
        or float64).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is empty, the magic number is wrong (non-zero first two bytes or
        an unknown dtype code), the header or data is shorter than the header
        promises, or bytes follow the data.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < _HEADER.size:
        raise ValueError(
            f"IDX file {str(path)!r} is truncated: {len(data)} bytes, shorter than the "
            f"{_HEADER.size}-byte magic number; delete it and fetch it again"
        )
    zero0, zero1, code, ndim = _HEADER.unpack_from(data)
    if zero0 != 0 or zero1 != 0:
        raise ValueError(
            f"{str(path)!r} is not an IDX file: its magic number starts with bytes "
            f"0x{zero0:02x} 0x{zero1:02x}, expected 0x00 0x00; check that you passed "
            "the right file (an unpacked IDX file or its .gz, not a .zip or .pt)"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(
            f"{str(path)!r} has an unknown IDX dtype code 0x{code:02X} in its magic "
            f"number (known: {known}); the file is corrupt or not an IDX file"
        )
    if ndim == 0:
        raise ValueError(f"IDX file {str(path)!r} declares 0 dimensions; the file is corrupt")
    header_size = _HEADER.size + ndim * _DIM.size
    if len(data) < header_size:
        raise ValueError(
            f"IDX file {str(path)!r} is truncated: the header declares {ndim} dimensions "
            f"({header_size} header bytes) but the file has only {len(data)} bytes; "
            "delete it and fetch it again"
        )
    shape = tuple(_DIM.unpack_from(data, _HEADER.size + i * _DIM.size)[0] for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected:
        raise ValueError(
            f"IDX file {str(path)!r} is truncated: the header promises shape {shape} of "
            f"{dtype.newbyteorder('=').name} ({expected} bytes in all) but the file has only "
            f"{len(data)} bytes; delete it and fetch it again"
        )
    if len(data) > expected:
        raise ValueError(
            f"IDX file {str(path)!r} has {len(data) - expected} bytes of trailing garbage "
            f"after the shape {shape} data the header declares; the file is corrupt or "
            "was concatenated with something else: fetch it again"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, atomically.

    The data is written to a temporary file in the target's folder, flushed and
    fsynced, then moved over the target with :func:`os.replace`, so readers never
    see a partial file. A name ending in ``.gz`` produces a gzip-compressed file
    (with a zero timestamp, so identical arrays give identical bytes).

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its folder must exist.
    array : numpy.ndarray
        At least one-dimensional array of dtype uint8, int8, int16, int32, float32
        or float64; every dimension must fit in an unsigned 32-bit integer.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    ValueError
        If the dtype has no IDX code, the array is 0-dimensional or has more than
        255 dimensions, or a dimension is too large.
    FileNotFoundError
        If the target folder does not exist.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(
            f"cannot write {str(path)!r}: dtype {array.dtype} has no IDX code; cast the "
            "array to uint8, int8, int16, int32, float32 or float64 first"
        )
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"cannot write {str(path)!r}: IDX needs 1 to 255 dimensions, got {array.ndim}")
    if any(n >= 2**32 for n in array.shape):
        raise ValueError(
            f"cannot write {str(path)!r}: shape {array.shape} has a dimension that does not fit in 32 bits"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist; create it first"
        )
    payload = (
        _HEADER.pack(0, 0, code, array.ndim)
        + b"".join(_DIM.pack(n) for n in array.shape)
        + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    )
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with atomic_open(path, "wb") as handle:
        handle.write(payload)
    return path
