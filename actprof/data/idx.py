"""The IDX file format MNIST ships in: unsigned-byte arrays with a small big-endian header, gzip or raw.

Reading checks everything a corrupt, truncated or foreign file can get wrong and says so in one line
(``DataError``); nothing here knows where the files come from.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from actprof.errors import DataError
from actprof.schema.storage import write_bytes_atomic

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE_CODE = 0x08
_SUPPORTED_NDIM = (1, 3)
_CHUNK = 1 << 20
FIX_FILE = "replace it with an intact copy of the file"
FIX_DIR = "pass --data-dir (or set ACTPROF_DATA_DIR) to a folder holding the four MNIST IDX files"


def read_idx(path: Path) -> np.ndarray:
    """Read an unsigned-byte IDX file, gzip-compressed or raw; any problem is a one-line ``DataError``."""
    path = Path(path)
    try:
        with _open_idx_stream(path) as stream:
            dims = _read_idx_header(stream, path)
            expected = math.prod(dims)
            payload = _read_at_most(stream, expected + 1)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; check the path or {FIX_DIR}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, expected an IDX file; {FIX_DIR}") from None
    except PermissionError:
        raise DataError(f"cannot read {path}: permission denied; make it readable") from None
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a cut-off gzip stream raises EOFError; bad deflate data zlib.error.
        raise DataError(f"{path} is corrupt ({one_line(exc)}); {FIX_FILE}") from None
    if len(payload) < expected:
        raise DataError(
            f"{path} is truncated: its header declares {expected:,} data bytes, found {len(payload):,}; {FIX_FILE}"
        )
    if len(payload) > expected:
        raise DataError(f"{path} has more than the {expected:,} data bytes its header declares; {FIX_FILE}")
    # A bytearray keeps the array writable (torch.from_numpy warns on read-only arrays) without a copy.
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array (1 or 3 dims) as IDX, gzip-compressed with mtime=0 when the name ends in .gz."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in _SUPPORTED_NDIM:
        raise ValueError(f"write_idx takes a uint8 array of 1 or 3 dims, got {array.dtype} {array.shape}")
    data = _idx_header(array.shape) + np.ascontiguousarray(array).tobytes()
    if Path(path).name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    write_bytes_atomic(Path(path), data)


def idx_sha256(array: np.ndarray) -> str:
    """sha256 of the IDX file content that ``array`` was read from (header + payload, decompressed)."""
    digest = hashlib.sha256(_idx_header(array.shape))
    digest.update(memoryview(np.ascontiguousarray(array, dtype=np.uint8)).cast("B"))
    return digest.hexdigest()


def _idx_header(shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, _UBYTE_CODE, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


@contextlib.contextmanager
def _open_idx_stream(path: Path) -> Iterator[IO[bytes]]:
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == _GZIP_MAGIC  # decide by content, not by name
        raw.seek(0)
        if is_gzip:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped
        else:
            yield raw


def _read_idx_header(stream: IO[bytes], path: Path) -> tuple[int, ...]:
    magic = stream.read(4)
    if len(magic) < 4 or magic[:2] != b"\x00\x00":
        raise DataError(f"{path} is not an IDX file (bad magic bytes); {FIX_FILE}")
    dtype_code, ndim = magic[2], magic[3]
    if dtype_code != _UBYTE_CODE:
        raise DataError(
            f"{path} holds IDX data of type code 0x{dtype_code:02x}; actprof reads only unsigned-byte (0x08) "
            f"MNIST files; {FIX_FILE}"
        )
    if ndim not in _SUPPORTED_NDIM:
        raise DataError(f"{path} has {ndim} dimensions; MNIST files have 1 (labels) or 3 (images); {FIX_FILE}")
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path} is truncated inside its IDX header; {FIX_FILE}")
    return struct.unpack(f">{ndim}I", raw_dims)


def _read_at_most(stream: IO[bytes], limit: int) -> bytearray:
    """Read until EOF or ``limit`` bytes, in chunks, so a lying header cannot make us allocate gigabytes."""
    buffer = bytearray()
    while len(buffer) < limit:
        chunk = stream.read(min(_CHUNK, limit - len(buffer)))
        if not chunk:
            break
        buffer += chunk
    return buffer


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
