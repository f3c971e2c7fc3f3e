"""The history's SQLite file itself: opened so that it is always closed and its errors read as one line, and
checked to be an actprof history of a schema this actprof reads (``schema.history`` holds its tables)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from actprof.errors import ModelFileError, OutputError

FORMAT = "actprof-history"
HISTORY_SCHEMA = 1  # the tables below; a newer file is refused, an older one would be migrated here
IDENTITY_TABLE = "actprof_history"


@contextlib.contextmanager
def connect(path: Path, *, writable: bool) -> Iterator[sqlite3.Connection]:
    """A connection that is always closed, with SQLite's errors turned into one line naming the fix."""
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory; --db takes a file, e.g. {path / 'history.sqlite'}")
    if writable:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}; choose a writable --db") from None
    target = str(path) if writable else f"{path.resolve().as_uri()}?mode=ro"
    try:
        db = sqlite3.connect(target, uri=not writable, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        raise _error(path, exc, writable=writable) from None
    try:
        yield db
    except sqlite3.Error as exc:
        raise _error(path, exc, writable=writable) from None
    finally:
        db.close()


def _error(path: Path, exc: sqlite3.Error, *, writable: bool) -> ModelFileError | OutputError:
    message = str(exc)
    if writable and any(word in message for word in ("readonly", "unable to open", "disk I/O", "full", "locked")):
        return OutputError(f"cannot write {path}: {message}; choose a writable --db")
    if "not a database" in message:
        return ModelFileError(f"{path} is not an SQLite file, so not an actprof history; pass another --db")
    return ModelFileError(f"cannot read {path} as an actprof history ({message}); pass another --db")


def tables(db: sqlite3.Connection) -> set[str]:
    """The file's tables; a file that is not SQLite fails here ("file is not a database")."""
    return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def check_identity(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a file that is not an actprof history, or one written by a newer actprof."""
    if IDENTITY_TABLE not in tables(db):
        raise ModelFileError(
            f"{path} is an SQLite file of another application (no {IDENTITY_TABLE} table); pass another --db"
        )
    meta = dict(db.execute(f"SELECT key, value FROM {IDENTITY_TABLE}").fetchall())
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an actprof history (format {meta.get('format')!r}); pass another --db")
    version = meta.get("schema_version", "")
    if not version.isdigit():
        raise ModelFileError(f"{path} has no history schema version; it is not an actprof history")
    if int(version) > HISTORY_SCHEMA:
        raise ModelFileError(
            f"{path} uses history schema {version}, newer than this actprof ({HISTORY_SCHEMA}); upgrade actprof"
        )
