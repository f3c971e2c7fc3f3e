"""The public API's functions over results already written: ``diff`` (the CI gate) and the run history."""

from __future__ import annotations

from pathlib import Path

from actprof.analysis.gate import Diff
from actprof.schema.history import AddedRun, History


def diff(base: Path, new: Path, *, threshold: float = 0.05) -> Diff:
    """Every test accuracy and latency ratio of ``base``'s report against ``new``'s (report directories or
    report.json files): each ``Change`` with its 95% interval and its call at ``threshold`` (a fraction) —
    regression, inconclusive (the interval straddles it), improvement or no change. ``Diff.regressions`` and
    ``Diff.inconclusive`` are what ``actprof diff`` fails on (the latter with ``--strict``)."""
    from actprof.analysis.gate import diff as compare
    from actprof.analysis.gate import load_report

    return compare(load_report(base), load_report(new), threshold=threshold)


def history_add(db: Path, results: Path, *, label: str | None = None) -> AddedRun:
    """Add the report in ``results`` (a report directory or report.json) to the history ``db`` (created where
    it does not exist) as one run: its runtime versions, actprof version, machine, the git commit actprof ran
    from (the record's; for a report that predates it, the results' repository's, where they are in one), and
    every activation's ratios and test accuracy. The same
    report again is skipped (``AddedRun.added`` False), so a re-run CI job does not count it twice."""
    from actprof.pipeline.history import add

    return add(Path(db), Path(results), label=label)


def history_show(
    db: Path,
    *,
    activation: str | None = None,
    provider: str | None = None,
    precision: str | None = None,
    batch: int | None = None,
    plot: Path | None = None,
) -> History:
    """The runs in ``db`` (oldest report first) and ``activation``'s ratios and accuracies over them, filtered
    by deployment and batch; with ``plot`` (a .png or .svg path, needs ``activation``) the ratio over runs is
    drawn there, written atomically."""
    from actprof.pipeline.history import show

    return show(Path(db), activation=activation, provider=provider, precision=precision, batch=batch, plot=plot)
