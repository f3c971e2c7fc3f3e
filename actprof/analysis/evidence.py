"""Evidence over seeds: means with t-based 95% intervals, and paired comparisons against the baseline.

A single brief training run cannot tell "by design" from "by chance". With several seeds (a seed fixes
the initial draw and the data order for every activation alike), each difference is paired by seed and
gets a confidence interval, a p-value (paired t-test) and an effect size (Cohen's d_z).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from actprof.schema.reports import Estimate, PairedComparison
from actprof.schema.training import TrainResult, time_to

ALPHA = 0.05


def t_quantile(probability: float, df: int) -> float:
    """Student's t quantile (scipy.stats.t.ppf). scipy.special computes it as scipy.stats does, without
    importing scipy.stats, which costs every command ~0.6 s."""
    from scipy import special

    return float(special.stdtrit(df, probability))


def paired_t_pvalue(mean: float, sd: float, n: int) -> float:
    """Two-sided p-value of a paired t-test from the differences' mean and standard deviation (sd > 0,
    n ≥ 2): scipy.stats.ttest_rel's, tested against it."""
    from scipy import special

    t = mean / (sd / math.sqrt(n))
    return float(2 * special.stdtr(n - 1, -abs(t)))


def estimate(values: Sequence[float]) -> Estimate:
    """Mean with a two-sided 95% t interval (no interval from a single value)."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = len(data)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, math.nan)
    mean = float(data.mean())
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1, math.nan)
    std = float(data.std(ddof=1))
    half = t_quantile(1 - ALPHA / 2, n - 1) * std / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n, std)


def paired(
    what: str,
    activation: Sequence[float | None],
    baseline: Sequence[float | None],
    *,
    higher_is_better: bool,
    resolution: float | None = None,
) -> PairedComparison:
    """activation − baseline, paired by seed, over the seeds where both have a value.

    A run that never reached a target has no value; the comparison says how many reached on each side
    instead of dropping them silently. ``resolution``: how finely each value was measured; a mean
    difference no larger than it is reported unresolved (and never significant).
    """
    comparison = _paired(what, activation, baseline, higher_is_better=higher_is_better)
    if resolution is None or math.isnan(comparison.mean_difference):
        return comparison
    resolved = abs(comparison.mean_difference) > resolution
    return replace(
        comparison,
        resolution=resolution,
        resolved=resolved,
        significant=comparison.significant and resolved,
    )


def _paired(
    what: str, activation: Sequence[float | None], baseline: Sequence[float | None], *, higher_is_better: bool
) -> PairedComparison:
    pairs = [(a, b) for a, b in zip(activation, baseline, strict=True) if a is not None and b is not None]
    count = lambda values: f"{sum(v is not None for v in values)}/{len(values)}"  # noqa: E731
    reached = f"{count(activation)} vs {count(baseline)}"
    diffs = np.asarray([a - b for a, b in pairs], dtype=np.float64)
    n = len(diffs)
    nan = math.nan
    if n < 2:  # no interval from fewer than two pairs
        mean = float(diffs.mean()) if n else nan
        return PairedComparison(what, n, mean, nan, nan, nan, nan, False, higher_is_better, reached)
    mean = float(diffs.mean())
    sd = float(diffs.std(ddof=1))
    if sd == 0:
        significant = mean != 0
        p = 0.0 if significant else 1.0
        return PairedComparison(
            what, n, mean, mean, mean, p, math.inf if significant else 0.0, significant, higher_is_better, reached
        )
    half = t_quantile(1 - ALPHA / 2, n - 1) * sd / math.sqrt(n)
    p_value = paired_t_pvalue(mean, sd, n)
    return PairedComparison(
        what=what,
        n=n,
        mean_difference=mean,
        low=mean - half,
        high=mean + half,
        p_value=p_value,
        effect_size=mean / sd,
        significant=p_value < ALPHA,
        higher_is_better=higher_is_better,
        reached=reached,
    )


# --- what is compared over seeds -------------------------------------------------------------------

# (value of one run, whether higher is better, the resolution of that value in one run or None)
Metric = tuple[Callable[[TrainResult], float | None], bool, Callable[[TrainResult], float | None] | None]


def run_seconds(run: TrainResult, target: float) -> float | None:
    return time_to(run.validation, target).seconds


def _run_steps(run: TrainResult, target: float) -> float | None:
    step = time_to(run.validation, target).step
    return float(step) if step is not None else None


def _seconds_resolution(run: TrainResult, target: float) -> float | None:
    return time_to(run.validation, target).resolution_seconds


def steps_resolution(run: TrainResult, target: float) -> float | None:
    """The width, in steps, of the validation bracket a run's crossing of ``target`` was read in."""
    return time_to(run.validation, target).resolution_steps


def seconds_metric(target: float) -> Metric:
    """Training seconds to ``target`` validation accuracy (lower is better), with its validation bracket."""
    at = functools.partial
    return at(run_seconds, target=target), False, at(_seconds_resolution, target=target)


def steps_metric(target: float) -> Metric:
    """Training steps to ``target`` validation accuracy (lower is better), with its validation bracket: the
    same on any stack."""
    at = functools.partial
    return at(_run_steps, target=target), False, at(steps_resolution, target=target)


def seed_metrics(target: float | None) -> dict[str, Metric]:
    """What is compared over seeds: name -> (value of one run, whether higher is better, the resolution of
    that value in one run or None). Time to accuracy is compared at the report's target only."""
    metrics: dict[str, Metric] = {
        "test accuracy": (lambda r: r.test_accuracy, True, None),
        "test loss": (lambda r: r.test_loss, False, None),
    }
    if target is not None:
        metrics[f"seconds to {100 * target:.0f}%"] = seconds_metric(target)
        metrics[f"steps to {100 * target:.0f}%"] = steps_metric(target)
    return metrics


def resolution(runs: list[TrainResult], of: Callable[[TrainResult], float | None] | None) -> float | None:
    """The median resolution of a time-to-target over the runs that reached it (None: not measured)."""
    if of is None:
        return None
    widths = sorted(w for w in (of(r) for r in runs) if w is not None)
    return float(statistics.median(widths)) if widths else None


def compare(what: str, metric: Metric, mine: list[TrainResult], theirs: list[TrainResult]) -> PairedComparison:
    """``mine`` − ``theirs`` paired in order (the same seed on each side), with the metric's resolution."""
    value, higher, resolution_of = metric
    return paired(
        what,
        [value(r) for r in mine],
        [value(r) for r in theirs],
        higher_is_better=higher,
        resolution=resolution([*mine, *theirs], resolution_of),
    )
