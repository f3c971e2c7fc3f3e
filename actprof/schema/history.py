"""The history: reports kept over time in one local SQLite file, so that an activation's ratio to its baseline
can be followed across runtime releases, actprof versions, commits and machines.

It lives beside ``storage`` in the schema layer because it is where records meet the disk, nothing more: a
report goes in as rows (its runs, ratios and accuracies), typed rows come out; no analysis, no rendering. The
standard library's ``sqlite3`` is the whole dependency, and SQLite's transactions make every write all or
nothing: an interrupted ``add`` leaves the file as it was. The default rollback journal (not WAL) keeps the
history one file, which is what a CI cache can carry between runs.

The file says whose it is: a table ``actprof_history(key, value)`` holds the format name and the history's
schema version. A file without it (another application's SQLite, a text file) or of a newer schema is refused
in one line, never written to.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from actprof.errors import ModelFileError, UsageError
from actprof.schema.history_file import FORMAT, HISTORY_SCHEMA, IDENTITY_TABLE, check_identity, connect, tables
from actprof.schema.profiling import Interval
from actprof.schema.reports import ReportRecord
from actprof.schema.storage import dumps, sha256

_TABLES = f"""
CREATE TABLE IF NOT EXISTS {IDENTITY_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    added_at TEXT NOT NULL,        -- when it was added (UTC)
    created TEXT NOT NULL,         -- when the report was made, as the record says
    digest TEXT NOT NULL,          -- sha256 of the record's content: the same report is added once
    label TEXT,
    actprof TEXT NOT NULL,
    git_commit TEXT,               -- of the results' repository, where they are in one
    cpu_model TEXT NOT NULL,
    cpu_count INTEGER NOT NULL,
    arch TEXT NOT NULL,
    platform TEXT NOT NULL,
    torch TEXT,
    onnxruntime TEXT,
    openvino TEXT,
    versions TEXT NOT NULL,        -- every version the record lists, as JSON
    baseline TEXT NOT NULL,
    source TEXT NOT NULL,          -- the results it was read from
    UNIQUE (created, digest)
);
CREATE TABLE IF NOT EXISTS ratios (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    activation TEXT NOT NULL,
    baseline TEXT NOT NULL,
    provider TEXT NOT NULL,
    precision TEXT NOT NULL,
    batch INTEGER NOT NULL,
    mode TEXT NOT NULL,
    value REAL,                    -- latency ÷ the baseline's, same deployment and batch (NULL: NaN)
    low REAL,
    high REAL,
    n INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS accuracy (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    activation TEXT NOT NULL,
    test_accuracy REAL
);
CREATE INDEX IF NOT EXISTS ratios_by_activation ON ratios (activation, run_id);
CREATE INDEX IF NOT EXISTS accuracy_by_activation ON accuracy (activation, run_id);
"""

_ARCH = re.compile(r"x86_64|amd64|aarch64|arm64|armv\w+|i[3-6]86|ppc64le|s390x|riscv64", re.IGNORECASE)


@dataclass(frozen=True)
class Run:
    """One report in the history: when, what software, which machine, where it came from."""

    id: int
    added_at: str
    created: str
    label: str | None
    actprof: str
    git_commit: str | None
    cpu_model: str
    cpu_count: int
    arch: str
    platform: str
    torch: str | None
    onnxruntime: str | None
    openvino: str | None
    baseline: str
    source: str


@dataclass(frozen=True)
class RatioPoint:
    """An activation's latency ratio to the baseline in one run, at one deployment and batch."""

    run_id: int
    activation: str
    baseline: str
    provider: str
    precision: str
    batch: int
    mode: str
    ratio: Interval


@dataclass(frozen=True)
class AccuracyPoint:
    run_id: int
    activation: str
    test_accuracy: float


@dataclass(frozen=True)
class History:
    """What ``read`` found: every run (oldest report first), and the rows that match the filters."""

    path: Path
    runs: list[Run]
    ratios: list[RatioPoint]
    accuracy: list[AccuracyPoint]


@dataclass(frozen=True)
class AddedRun:
    """The run a report became; ``added`` is False where the same report was already there (nothing written)."""

    run: Run
    added: bool
    ratios: int
    accuracies: int


# --- writing ------------------------------------------------------------------------------------------------


def add(
    path: Path, record: ReportRecord, *, source: Path, git_commit: str | None, label: str | None = None
) -> AddedRun:
    """Add ``record`` as one run, in one transaction; the same report (created time and content) again is
    skipped, so that a CI job re-run on the same results does not count them twice."""
    path = Path(path)
    digest = sha256(dumps(record).encode("utf-8"))
    with connect(path, writable=True) as db:
        try:
            db.execute("BEGIN IMMEDIATE")  # two adds at once: the second waits, then sees the first's run
            _initialise(db, path)
            existing = db.execute("SELECT id FROM runs WHERE created = ? AND digest = ?", (record.created, digest))
            if (row := existing.fetchone()) is not None:
                db.execute("ROLLBACK")
                return AddedRun(_run(db, row[0]), added=False, ratios=0, accuracies=0)
            run_id = _insert_run(db, record, digest, source=source, git_commit=git_commit, label=label)
            ratios = _insert_ratios(db, run_id, record)
            accuracies = _insert_accuracy(db, run_id, record)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return AddedRun(_run(db, run_id), added=True, ratios=ratios, accuracies=accuracies)


def _initialise(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables in a blank file; check an existing one is an actprof history this version reads."""
    if tables(db):
        check_identity(db, path)
        return
    _createtables(db)
    db.executemany(
        f"INSERT INTO {IDENTITY_TABLE} (key, value) VALUES (?, ?)",
        [("format", FORMAT), ("schema_version", str(HISTORY_SCHEMA))],
    )


def _createtables(db: sqlite3.Connection) -> None:
    """``executescript`` would commit the open transaction first; one statement at a time keeps it open (the
    comments stay in the file's schema, for whoever opens it with ``sqlite3 history.sqlite .schema``)."""
    for statement in (s.strip() for s in _TABLES.split(";")):
        if statement:
            db.execute(statement)


def _insert_run(
    db: sqlite3.Connection,
    record: ReportRecord,
    digest: str,
    *,
    source: Path,
    git_commit: str | None,
    label: str | None,
) -> int:
    env = record.environment
    versions = env.versions
    row = {
        "added_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "created": record.created,
        "digest": digest,
        "label": label,
        "actprof": env.actprof,
        "git_commit": git_commit,
        "cpu_model": env.cpu_model,
        "cpu_count": env.cpu_count,
        "arch": arch(env.platform),
        "platform": env.platform,
        "torch": versions.get("torch"),
        # the GPU build where one is installed: the CUDA provider can only have come from it
        "onnxruntime": versions.get("onnxruntime-gpu") or versions.get("onnxruntime"),
        "openvino": versions.get("openvino"),
        "versions": json.dumps(versions, sort_keys=True),
        "baseline": record.baseline,
        "source": str(source),
    }
    names = ", ".join(row)
    cursor = db.execute(f"INSERT INTO runs ({names}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
    return int(cursor.lastrowid)


def _insert_ratios(db: sqlite3.Connection, run_id: int, record: ReportRecord) -> int:
    rows = [
        (run_id, s.name, record.baseline, r.provider, r.precision, r.batch, r.mode, *_bounds(r.vs_baseline))
        for s in record.activations
        for r in s.latency
        if r.vs_baseline is not None
    ]
    db.executemany(f"INSERT INTO ratios ({_RATIO_COLUMNS}) VALUES ({', '.join('?' * 11)})", rows)
    return len(rows)


def _insert_accuracy(db: sqlite3.Connection, run_id: int, record: ReportRecord) -> int:
    rows = [(run_id, s.name, _real(s.test_accuracy)) for s in record.activations]
    db.executemany("INSERT INTO accuracy (run_id, activation, test_accuracy) VALUES (?, ?, ?)", rows)
    return len(rows)


def _bounds(ratio: Interval) -> tuple[float | None, float | None, float | None, int]:
    return _real(ratio.value), _real(ratio.low), _real(ratio.high), ratio.n


def _real(x: float) -> float | None:
    """SQLite has no NaN: a missing bound (one seed, one round) is stored as NULL and read back as NaN."""
    return None if math.isnan(x) else x


def arch(platform: str) -> str:
    """The CPU architecture named in a ``platform.platform()`` string ("" where it names none)."""
    found = _ARCH.search(platform)
    return found.group(0) if found else ""


def git_commit(directory: Path) -> str | None:
    """The commit checked out in the repository ``directory`` is in (None: not in one, or no git here)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


# --- reading ------------------------------------------------------------------------------------------------


def read(
    path: Path,
    *,
    activation: str | None = None,
    provider: str | None = None,
    precision: str | None = None,
    batch: int | None = None,
) -> History:
    """Every run, and the ratios and accuracies of ``activation`` (of all, where None) that match the filters.
    Opened read-only: showing never changes the file. An activation or filter matching nothing is refused with
    what the history does hold."""
    path = Path(path)
    if not path.is_dir() and (not path.is_file() or path.stat().st_size == 0):
        raise ModelFileError(f"no history at {path} yet; add results with: actprof history add DIR --db {path}")
    with connect(path, writable=False) as db:
        if not tables(db):
            raise ModelFileError(f"no history at {path} yet; add results with: actprof history add DIR --db {path}")
        check_identity(db, path)
        runs = [Run(*row) for row in db.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created, id")]
        if activation is not None:
            _check_known(db, path, activation)
        where, params = _filters(activation=activation, provider=provider, precision=precision, batch=batch)
        query = f"SELECT {_RATIO_COLUMNS} FROM ratios{where} ORDER BY run_id"
        ratios = [_as_ratio(row) for row in db.execute(query, params)]
        if not ratios and activation is not None and (provider or precision or batch is not None):
            _refuse_filters(db, path, activation)
        where, params = _filters(activation=activation)
        query = f"SELECT run_id, activation, test_accuracy FROM accuracy{where} ORDER BY run_id"
        accuracy = [
            AccuracyPoint(run_id, name, math.nan if value is None else value)
            for run_id, name, value in db.execute(query, params)
        ]
    return History(path, runs, ratios, accuracy)


_RUN_COLUMNS = (
    "id, added_at, created, label, actprof, git_commit, cpu_model, cpu_count, arch, platform, torch, onnxruntime, "
    "openvino, baseline, source"
)
_RATIO_COLUMNS = "run_id, activation, baseline, provider, precision, batch, mode, value, low, high, n"


def _as_ratio(row: tuple) -> RatioPoint:
    run_id, activation, baseline, provider, precision, batch, mode, value, low, high, n = row
    bounds = (math.nan if x is None else x for x in (value, low, high))
    return RatioPoint(run_id, activation, baseline, provider, precision, batch, mode, Interval(*bounds, n))


def _run(db: sqlite3.Connection, run_id: int) -> Run:
    return Run(*db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone())


def _filters(**equal: str | int | None) -> tuple[str, tuple]:
    """`` WHERE a = ? AND b = ?`` for the filters given (text compared case-blind), with its parameters."""
    given = {k: v for k, v in equal.items() if v is not None}
    if not given:
        return "", ()
    clauses = [f"{k} = ? COLLATE NOCASE" if isinstance(v, str) else f"{k} = ?" for k, v in given.items()]
    return " WHERE " + " AND ".join(clauses), tuple(given.values())


def _check_known(db: sqlite3.Connection, path: Path, activation: str) -> None:
    known = [name for (name,) in db.execute("SELECT DISTINCT activation FROM accuracy ORDER BY activation")]
    if activation.lower() not in (name.lower() for name in known):
        holds = ", ".join(known) or "no activations yet"
        raise UsageError(f"{path} has no {activation!r}; pass --act one of: {holds}")


def _refuse_filters(db: sqlite3.Connection, path: Path, activation: str) -> None:
    cells = db.execute(
        "SELECT DISTINCT provider, precision, batch FROM ratios WHERE activation = ? COLLATE NOCASE "
        "ORDER BY provider, precision, batch",
        (activation,),
    ).fetchall()
    holds = ", ".join(f"{p} {q} {b}" for p, q, b in cells) or "none"
    raise UsageError(
        f"no {activation} ratio in {path} matches --provider/--precision/--batch; it holds (provider precision "
        f"batch): {holds}"
    )
