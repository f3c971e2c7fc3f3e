"""Where records meet the disk: atomic writes, the one JSON path, model files.

Every artifact is written to a temporary file beside its target and renamed into place, so an interrupted
run never leaves a partial file. ``to_dict``/``from_dict`` round-trip records through plain JSON types;
``write_json``/``read_json`` are the only way records reach the disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import math
import os
import tempfile
import types
import typing
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from actprof.errors import ActprofError, ModelFileError, OutputError
from actprof.schema import SCHEMA_VERSION
from actprof.schema.training import ModelRecord

T = TypeVar("T")


# --- atomic writes ---------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Ctrl-C is held while the file is created and named, and delivered after, inside this try: an
        # interrupt between the two would otherwise orphan the file (seen once in CI).
        with _sigint_deferred():
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            tmp = Path(tmp_name)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get the usual permissions
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise _output_error(path, exc) from None
    finally:
        # BaseException included: Ctrl-C must not leave the temporary file behind either.
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold SIGINT at the OS level for a few statements (main thread only; elsewhere a no-op): the
    interrupt is delivered, as KeyboardInterrupt, right after, where cleanup is already in place."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def _output_error(path: Path, exc: OSError) -> OutputError:
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full; free space or choose another --out"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "permission denied; choose a writable --out directory"
    else:
        hint = exc.strerror or str(exc)
    return OutputError(f"cannot write {path}: {hint}")


# --- records <-> JSON ------------------------------------------------------------------------


def to_dict(record: Any) -> Any:
    """Plain JSON types for a record; non-finite floats become null (JSON has no NaN)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: to_dict(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, dict):
        return {str(k): to_dict(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [to_dict(v) for v in record]
    if isinstance(record, float) and not math.isfinite(record):
        return None
    if isinstance(record, Path):
        return str(record)
    if hasattr(record, "item") and callable(record.item):  # numpy / torch scalars
        return to_dict(record.item())
    return record


def from_dict(cls: type[T], data: Any) -> T:
    """Build ``cls`` from plain JSON data, checking the shape; raises ``ValueError`` on mismatch."""
    return _convert(cls, data, cls.__name__)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors) or f"{where}: unexpected null")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for field in dataclasses.fields(tp):
            if field.name in value:
                kwargs[field.name] = _convert(hints[field.name], value[field.name], f"{where}.{field.name}")
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: missing field {field.name!r}")
        return tp(**kwargs)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        vt = args[1] if args else Any
        return {str(k): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {type(value).__name__}")
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"{where}: {str(value)[:20]}… is too large for a number") from None
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {type(value).__name__}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ValueError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
        return value
    return value


def dumps(record: Any) -> str:
    return json.dumps(to_dict(record), indent=2, allow_nan=False) + "\n"


def write_json(path: Path, record: Any) -> None:
    """The one JSON writer: schema-versioned records, written atomically."""
    write_text_atomic(path, dumps(record))


def read_json(path: Path, cls: type[T]) -> T:
    """Load a record, refusing files that are not JSON, of the wrong shape, or of a newer schema."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist; check the path") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a directory, expected a JSON file") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, or an int past the digit limit
        raise ModelFileError(f"{path} is not valid JSON; regenerate it") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} does not hold an actprof record (expected a JSON object)")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"{path} has no schema_version; it is not an actprof record")
    if version > SCHEMA_VERSION:
        raise ModelFileError(
            f"{path} uses schema {version}, newer than this actprof ({SCHEMA_VERSION}); upgrade actprof"
        )
    try:
        return from_dict(cls, data)
    except (ValueError, TypeError, ArithmeticError, RecursionError, ActprofError) as exc:  # settings check themselves
        raise ModelFileError(f"{path} is not a valid {cls.__name__} record ({exc}); regenerate it") from None


def header(kind: str) -> dict[str, Any]:
    """The fields every stage's record starts with: schema version, kind, creation time, environment."""
    from actprof.schema import environment

    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment.capture(),
    }


# --- model files: <name>.onnx + <name>.json ------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model(out_dir: Path, name: str, onnx_bytes: bytes, record: ModelRecord) -> tuple[Path, Path]:
    """Write ``<name>.onnx`` then ``<name>.json``, each atomically; the JSON carries the ONNX's sha256."""
    onnx_path, json_path = Path(out_dir) / f"{name}.onnx", Path(out_dir) / f"{name}.json"
    write_bytes_atomic(onnx_path, onnx_bytes)
    write_json(json_path, record)
    return onnx_path, json_path


def load_record(json_path: Path) -> ModelRecord:
    record = read_json(json_path, ModelRecord)
    if record.kind != "model":
        raise ModelFileError(f"{json_path} is a {record.kind!r} record, not a model; pass the models directory")
    return record


def find_models(models_dir: Path, names: list[str] | None = None) -> list[tuple[Path, ModelRecord]]:
    """(onnx path, record) for every model in ``models_dir`` (or the named ones), checked for integrity."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise ModelFileError(f"models directory {models_dir} does not exist; run actprof train-export first")
    if names:  # each named activation, and any rewritten variant of it (elu+pool-first)
        json_files = [p for n in names for p in [models_dir / f"{n}.json", *sorted(models_dir.glob(f"{n}+*.json"))]]
    else:
        json_files = sorted(models_dir.glob("*.json"))
    found = []
    for json_path in json_files:
        onnx_path = json_path.with_suffix(".onnx")
        if not json_path.is_file() or not onnx_path.is_file():
            raise ModelFileError(
                f"no model {json_path.stem!r} in {models_dir}; run actprof train-export --act {json_path.stem}"
            )
        record = load_record(json_path)
        if sha256(onnx_path.read_bytes()) != record.export.sha256:
            raise ModelFileError(f"{onnx_path} does not match {json_path.name} (sha256); re-run train-export")
        found.append((onnx_path, record))
    if not found:
        raise ModelFileError(f"no models in {models_dir}; run actprof train-export first")
    return found


def user_cache(name: str, *, override: str | None = None) -> Path:
    """$<override> where that variable is set, else $XDG_CACHE_HOME/actprof/<name>, else
    ~/.cache/actprof/<name>."""
    if override and (explicit := os.environ.get(override)):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "actprof" / name
