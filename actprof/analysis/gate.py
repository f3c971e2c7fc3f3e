"""The CI gate: two result sets compared quantity by quantity, each change with its 95% interval and a call.

Every latency ratio to the baseline activation (per activation, deployment, batch and mode) and every test
accuracy (per activation) of BASE is compared with NEW's. The change gets a 95% confidence interval, and the
interval, not the point, is held against the threshold ``t``:

- ``regression``: the whole interval is worse than the threshold;
- ``inconclusive``: the interval straddles the threshold (a regression cannot be ruled in or out: measure again,
  longer);
- ``improvement``: the whole interval is better than the threshold, mirrored;
- ``no change``: the interval lies inside the threshold (also when it improved, within the threshold).

The two result sets are independent measurements, so each side's interval is combined with the other's by
MOVER (the method of variance estimates recovery, Zou & Donner 2008): for latency in log space, for accuracy
as Newcombe's hybrid score interval (Wilson intervals combined by MOVER, Newcombe 1998).

Where a side has no usable interval (a ratio from a single round, NaN bounds; a report from before the test-set
size was recorded) the noise is unknown: the point change is shown and called ``inconclusive``, since neither a
regression nor its absence can be claimed. A quantity identical on both sides is ``no change`` whatever its
interval: that is one measurement read twice (a report diffed with itself), not two independent draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import astuple, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Literal

from actprof.errors import ModelFileError, UsageError
from actprof.schema.profiling import Interval
from actprof.schema.reports import ActivationSummary, LatencyBrief, ReportRecord
from actprof.schema.storage import read_json

Call = Literal["regression", "inconclusive", "improvement", "no change"]
CALLS: tuple[Call, ...] = ("regression", "inconclusive", "improvement", "no change")  # the order they are listed
ACCURACY = "test accuracy"
IDENTICAL = "identical"
Z95 = NormalDist().inv_cdf(0.975)  # 1.959964…: two-sided 95% (statistics, not scipy.stats: no import cost)


@dataclass(frozen=True)
class Change:
    """One quantity of BASE against NEW: the change, its 95% interval, and the call at the threshold.

    A latency change is the ratio NEW/BASE of the two latency ratios to the baseline activation (1: unchanged,
    1.10: 10% slower relative to the baseline); an accuracy change is the difference NEW − BASE of the two test
    accuracies (0: unchanged). ``low``/``high`` are NaN where no interval can be computed; ``reason`` then says
    why (and is ``"identical"`` where both sides hold the very same values).
    """

    activation: str
    quantity: str  # "test accuracy", or "latency × relu": the ratio to the baseline activation
    base: float
    new: float
    change: float
    low: float
    high: float
    call: Call
    reason: str = ""
    provider: str = ""  # latency only: the deployment (provider, precision), the batch and the mode
    precision: str = ""
    batch: int | None = None
    mode: str = ""

    @property
    def is_ratio(self) -> bool:
        return self.quantity != ACCURACY

    @property
    def where(self) -> str:
        """The deployment, batch and mode of a latency ratio ("cpu fp32, batch 1, compute"); "" for accuracy."""
        return f"{self.provider} {self.precision}, batch {self.batch}, {self.mode}" if self.is_ratio else ""

    @property
    def what(self) -> str:
        return f"{self.activation} {self.quantity}" + (f" ({self.where})" if self.where else "")


@dataclass(frozen=True)
class Diff:
    """Every change of a comparison, regressions first (then inconclusive, improvements, no change)."""

    threshold: float  # a fraction: 0.05 is 5%
    baseline: str  # the activation both reports' latency ratios are to
    changes: list[Change]
    not_compared: list[str] = field(default_factory=list)  # BASE's quantities that NEW lacks, or either side lacks

    def called(self, call: Call) -> list[Change]:
        return [c for c in self.changes if c.call == call]

    @property
    def regressions(self) -> list[Change]:
        return self.called("regression")

    @property
    def inconclusive(self) -> list[Change]:
        return self.called("inconclusive")

    @property
    def identical(self) -> bool:
        """Nothing changed at all: every compared value is the same on both sides, and nothing went missing."""
        return not self.not_compared and all(c.reason == IDENTICAL for c in self.changes)


def load_report(path: Path) -> ReportRecord:
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    if not file.exists():
        raise ModelFileError(f"no report at {file}; run actprof report --out {path} first")
    record = read_json(file, ReportRecord)
    if record.kind != "report":
        raise ModelFileError(f"{file} is a {record.kind!r} record, not a report")
    return record


def diff(base: ReportRecord, new: ReportRecord, *, threshold: float) -> Diff:
    """Every test accuracy and latency ratio of ``base`` against ``new`` (``threshold`` a fraction: 0.05).

    A test accuracy regressed when its drop is, with 95% confidence, larger than ``threshold`` of BASE's
    accuracy (relative, as the threshold has always meant: 5% of 98% is 4.9 points); a latency ratio when
    NEW/BASE is, with 95% confidence, above 1 + ``threshold``.
    """
    if base.baseline != new.baseline:
        raise UsageError(
            f"BASE's latency ratios are to {base.baseline}, NEW's to {new.baseline}: "
            f"re-run actprof report --baseline {base.baseline} for NEW"
        )
    changes: list[Change] = []
    missing: list[str] = []
    now_by_name = {s.name: s for s in new.activations}
    for old in base.activations:
        now = now_by_name.get(old.name)
        if now is None:
            missing.append(f"{old.name} (not in NEW)")
            continue
        changes.append(accuracy_change(old, now, threshold))
        if old.name != base.baseline:  # the baseline's ratio to itself is 1 by definition: nothing to compare
            for change_or_gap in _latency_changes(old, now, base.baseline, threshold):
                (changes if isinstance(change_or_gap, Change) else missing).append(change_or_gap)
    if not changes:
        raise UsageError("BASE and NEW have no activation in common: nothing to compare")
    changes.sort(key=lambda c: CALLS.index(c.call))  # stable: the report's order within each call
    return Diff(threshold, base.baseline, changes, missing)


# --- latency: the ratio of two latency ratios ------------------------------------------------------------


def _latency_changes(
    old: ActivationSummary, now: ActivationSummary, baseline: str, threshold: float
) -> Iterator[Change | str]:
    """A change per latency row the two sides share; a string naming each row that cannot be compared."""
    now_rows = {_key(r): r for r in now.latency}
    for row in old.latency:
        match = now_rows.get(_key(row))
        where = f"{old.name} latency ({row.provider} {row.precision}, batch {row.batch}, {row.mode})"
        if match is None:
            yield f"{where} (not in NEW)"
        elif row.vs_baseline is None or match.vs_baseline is None:
            yield f"{where} (no ratio to {baseline} in {'BASE' if row.vs_baseline is None else 'NEW'})"
        else:
            yield latency_change(old.name, baseline, row, match, threshold)


def _key(row: LatencyBrief) -> tuple[str, str, int, str]:
    return row.provider, row.precision, row.batch, row.mode


def latency_change(activation: str, baseline: str, old: LatencyBrief, new: LatencyBrief, threshold: float) -> Change:
    """NEW's latency ratio to the baseline over BASE's, with its MOVER interval, called at ``threshold``.

    Without a usable interval on either side (fewer than two rounds, NaN bounds) the size of the noise is
    unknown: the point change is kept, and the call is ``inconclusive`` whatever the point says, since neither
    a regression nor its absence can be claimed. The exception is a ratio identical on both sides: that is the
    same measurement read twice (a report diffed with itself), not two draws, and nothing changed.
    """
    a, b = old.vs_baseline, new.vs_baseline
    assert a is not None and b is not None
    gap = _unusable(a, "BASE") or _unusable(b, "NEW")
    if gap:
        point, low, high = (b.value / a.value if a.value > 0 else math.nan), math.nan, math.nan
        call: Call = "inconclusive"
    else:
        point, low, high = mover_ratio(a, b)
        call = judge(math.log(low), math.log(high), math.log1p(threshold))
    if _same(astuple(a), astuple(b)):
        call, gap = "no change", IDENTICAL
    quantity = f"latency × {baseline}"
    where = {"provider": old.provider, "precision": old.precision, "batch": old.batch, "mode": old.mode}
    return Change(activation, quantity, a.value, b.value, point, low, high, call, gap, **where)


def mover_ratio(old: Interval, new: Interval) -> tuple[float, float, float]:
    """``new.value / old.value`` and its 95% interval, from the two independent intervals by MOVER in log space.

    Why this: the two runs are independent, and each recorded only the median of its per-round ratios with
    that median's distribution-free interval — not the rounds, so nothing can be resampled or paired. The
    median's interval is asymmetric, and a ratio's noise is multiplicative: in log space the ratio of ratios
    is a difference, and MOVER recovers each side's variance from its own interval's distance to its point,
    on the side that matters (NEW's upper with BASE's lower for the upper limit), so the asymmetry is kept.
    With symmetric intervals it reduces to the usual root-sum-of-squares of two independent errors.
    """
    r = math.log(new.value) - math.log(old.value)
    up = math.hypot(math.log(new.high) - math.log(new.value), math.log(old.value) - math.log(old.low))
    down = math.hypot(math.log(new.value) - math.log(new.low), math.log(old.high) - math.log(old.value))
    return math.exp(r), math.exp(r - down), math.exp(r + up)


def _unusable(interval: Interval, side: str) -> str:
    """Why ``interval`` cannot enter MOVER ("" where it can): too few rounds, NaN, or bounds around no point."""
    values = (interval.value, interval.low, interval.high)
    if interval.n < 2 or not all(math.isfinite(v) and v > 0 for v in values):
        return f"no interval in {side} ({interval.n} round(s))"
    if not interval.low <= interval.value <= interval.high:
        return f"no interval in {side} (its bounds do not contain its value)"
    return ""


# --- test accuracy: the difference of two proportions ----------------------------------------------------


def accuracy_change(old: ActivationSummary, now: ActivationSummary, threshold: float) -> Change:
    """NEW − BASE test accuracy, with Newcombe's hybrid score interval, called at ``threshold`` × BASE's accuracy.

    The accuracy is a proportion of the test set, so its noise is the binomial noise of that many images
    (``test_images``; one model each, not the spread over seeds: it is the exported model that is compared).
    A report without the count (written before it was recorded) gets no interval and the call
    ``inconclusive``, unless both accuracies are identical.
    """
    gap = _no_count(old, "BASE") or _no_count(now, "NEW")
    if gap:
        low, high = math.nan, math.nan
        call: Call = "inconclusive"
    else:
        old_correct, new_correct = _correct(old), _correct(now)
        low, high = newcombe_difference(old_correct, old.test_images, new_correct, now.test_images)
        call = judge(-high, -low, threshold * old.test_accuracy)
    if _same((old.test_accuracy, old.test_images), (now.test_accuracy, now.test_images)):
        call, gap = "no change", IDENTICAL
    point = now.test_accuracy - old.test_accuracy
    return Change(old.name, ACCURACY, old.test_accuracy, now.test_accuracy, point, low, high, call, gap)


def _no_count(summary: ActivationSummary, side: str) -> str:
    if summary.test_images > 0 and math.isfinite(summary.test_accuracy):
        return ""
    return f"no test-set size in {side} (re-run actprof report to record it)"


def _correct(summary: ActivationSummary) -> int:
    """The images the model got right (the record keeps the fraction)."""
    return min(summary.test_images, max(0, round(summary.test_accuracy * summary.test_images)))


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for the proportion ``correct``/``n``: it stays inside [0, 1] and keeps its
    coverage near 0 and 1, where test accuracies live (the Wald interval collapses to a point at 100%)."""
    p = correct / n
    scale = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / scale
    return centre - half, centre + half


def newcombe_difference(old_correct: int, old_n: int, new_correct: int, new_n: int) -> tuple[float, float]:
    """95% interval of new − old for two independent proportions: Newcombe's hybrid score interval (his
    method 10), each side's Wilson interval combined by MOVER. The test sets need not be the same size."""
    p_old, p_new = old_correct / old_n, new_correct / new_n
    old_low, old_high = wilson(old_correct, old_n)
    new_low, new_high = wilson(new_correct, new_n)
    d = p_new - p_old
    return (
        d - math.hypot(p_new - new_low, old_high - p_old),
        d + math.hypot(new_high - p_new, p_old - old_low),
    )


# --- the call ------------------------------------------------------------------------------------------------


def judge(worse_low: float, worse_high: float, limit: float) -> Call:
    """The call on an interval put on a scale where 0 is unchanged and higher is worse (the log latency ratio,
    or the accuracy's drop), ``limit`` ≥ 0 the threshold on that scale."""
    if worse_low > limit:
        return "regression"
    if worse_high >= limit:
        return "inconclusive"
    if worse_high < -limit:
        return "improvement"
    return "no change"


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


def parse_threshold(spec: str) -> float:
    text = spec.strip().removesuffix("%")
    try:
        value = float(text) / (100 if spec.strip().endswith("%") else 1)
    except ValueError:
        raise UsageError(f"--threshold must be a percentage like 5% or a fraction like 0.05, got {spec!r}") from None
    if not (math.isfinite(value) and 0 <= value < 10):
        raise UsageError(f"--threshold must be between 0% and 1000%, got {spec!r}")
    return value
