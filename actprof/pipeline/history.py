"""The history stage: a report added to the local SQLite history, and the history read back (and plotted)."""

from __future__ import annotations

from pathlib import Path

from actprof.errors import UsageError
from actprof.schema import history
from actprof.schema.history import AddedRun, History


def add(db: Path, results: Path, *, label: str | None = None) -> AddedRun:
    from actprof.analysis.gate import load_report

    record = load_report(results)
    where = results if results.is_dir() else results.parent
    commit = record.environment.actprof_commit or history.git_commit(where)  # what made it, else where it lies
    return history.add(db, record, source=results.resolve(), git_commit=commit, label=label)


def show(
    db: Path,
    *,
    activation: str | None,
    provider: str | None,
    precision: str | None,
    batch: int | None,
    plot: Path | None,
) -> History:
    from actprof.report.history import FIGURE_FORMATS, ratio_figure
    from actprof.schema.storage import write_bytes_atomic

    fmt = plot.suffix.lower().lstrip(".") if plot is not None else ""
    if plot is not None and fmt not in FIGURE_FORMATS:
        raise UsageError(f"--plot must end in .png or .svg, got {str(plot)!r}")
    if plot is not None and activation is None:
        raise UsageError("--plot draws one activation's ratio over runs: add --act NAME")
    if activation is None and (provider or precision or batch is not None):
        raise UsageError("--provider, --precision and --batch filter one activation's ratios: add --act NAME")
    if batch is not None and batch < 1:
        raise UsageError(f"--batch must be a positive batch size, got {batch}")
    found = history.read(db, activation=activation, provider=provider, precision=precision, batch=batch)
    if plot is not None:
        write_bytes_atomic(plot, ratio_figure(found, activation, fmt=fmt))
    return found
