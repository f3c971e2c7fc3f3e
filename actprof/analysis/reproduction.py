"""A published experiment's numbers against actprof's runs of it.

Each published number is one run. actprof runs the recipe over seeds and asks two questions: is the published
run inside the spread a single run of ours has (the 95% prediction interval: mean ± t·s·√(1 + 1/n)), and do the
differences the claim rests on (SELU − ReLU; 25 layers − 15 layers) come out the same way, paired by seed?
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from actprof.analysis.evidence import ALPHA, estimate, paired, t_quantile
from actprof.schema.reproduction import ReproducedContrast, ReproducedValue
from actprof.schema.training import TrainResult
from actprof.settings.literature import METRICS, Experiment

Runs = Mapping[tuple[str, str], Sequence[TrainResult]]  # (cell label, activation) → one run per seed


def metric_value(run: TrainResult, metric: str) -> float | None:
    """What ``metric`` reads off one run (None where the run has no such point)."""
    if metric == "test":
        return run.test_accuracy
    if metric == "val@last":
        return run.val_accuracy
    if metric == "val@1":
        point = next((p for p in run.validation if math.isclose(p.epoch, 1.0)), None)
        return point.val_accuracy if point else None
    raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")


def per_seed(runs: Sequence[TrainResult], metric: str) -> dict[int, float]:
    return {r.config.seed: v for r in runs if (v := metric_value(r, metric)) is not None and math.isfinite(v)}


def one_run_interval(values: Sequence[float]) -> tuple[float, float]:
    """The 95% prediction interval of one more run (NaN bounds from fewer than two runs)."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(1 - ALPHA / 2, n - 1) * sd * math.sqrt(1 + 1 / n)
    return mean - half, mean + half


def reach(published: float | None, low: float, high: float) -> str:
    if published is None or math.isnan(low):
        return "—"
    return "inside" if low <= published <= high else ("above" if published > high else "below")


def values(experiment: Experiment, runs: Runs) -> list[ReproducedValue]:
    """Every published number beside actprof's; and, for a cell and activation the source published nothing
    for, actprof's alone under the metrics it published elsewhere."""
    published = {(p.cell, p.activation, p.metric): p for p in experiment.published}
    metrics = list(dict.fromkeys(p.metric for p in experiment.published))
    rows = []
    for cell in experiment.cells:
        for arm in experiment.arms:
            for metric in metrics:
                seeds = per_seed(runs.get((cell.label, arm.activation), ()), metric)
                found = published.get((cell.label, arm.activation, metric))
                measured = list(seeds.values())
                low, high = one_run_interval(measured)
                rows.append(
                    ReproducedValue(
                        cell=cell.label,
                        activation=arm.activation,
                        label=arm.label or arm.activation,
                        metric=metric,
                        published=found.value if found else None,
                        note=found.note if found else "",
                        measured=estimate(measured),
                        one_run_low=low,
                        one_run_high=high,
                        reach=reach(found.value if found else None, low, high),
                        values=measured,
                    )
                )
    return rows


def contrasts(experiment: Experiment, runs: Runs) -> list[ReproducedContrast]:
    """Each arm against the first within a network, and (with several networks) each arm's last network
    against its first: the differences a claim about activations, or about depth, rests on."""
    metrics = list(dict.fromkeys(p.metric for p in experiment.published))
    first_arm, first_cell, last_cell = experiment.arms[0], experiment.cells[0], experiment.cells[-1]
    found = []
    for metric in metrics:
        for cell in experiment.cells:
            for arm in experiment.arms[1:]:
                what = f"{arm.label} − {first_arm.label}, {cell.label}"
                found.append(_contrast(experiment, runs, what, metric, (cell, arm), (cell, first_arm)))
        if len(experiment.cells) > 1:
            for arm in experiment.arms:
                what = f"{arm.label}: {last_cell.label} − {first_cell.label}"
                found.append(_contrast(experiment, runs, what, metric, (last_cell, arm), (first_cell, arm)))
    return found


def _contrast(experiment: Experiment, runs: Runs, what: str, metric: str, mine, theirs) -> ReproducedContrast:
    (cell_a, arm_a), (cell_b, arm_b) = mine, theirs
    a = per_seed(runs.get((cell_a.label, arm_a.activation), ()), metric)
    b = per_seed(runs.get((cell_b.label, arm_b.activation), ()), metric)
    seeds = sorted(set(a) & set(b))
    comparison = paired(what, [a[s] for s in seeds], [b[s] for s in seeds], higher_is_better=True)
    published = _published(experiment, cell_a.label, arm_a.activation, metric)
    base = _published(experiment, cell_b.label, arm_b.activation, metric)
    difference = published - base if published is not None and base is not None else None
    differences = [a[s] - b[s] for s in seeds]
    measured = estimate(differences)
    return ReproducedContrast(
        what=what,
        metric=metric,
        published=difference,
        measured=measured,
        p=comparison.p_value,
        call=_call(difference, measured.low, measured.high, one_run_interval(differences)),
    )


def _published(experiment: Experiment, cell: str, activation: str, metric: str) -> float | None:
    return next(
        (p.value for p in experiment.published if (p.cell, p.activation, p.metric) == (cell, activation, metric)),
        None,
    )


def _call(published: float | None, low: float, high: float, one_pair: tuple[float, float]) -> str:
    """Whether actprof's interval of the difference says what the published difference says: its sign (the
    interval of the mean excludes zero on the published side) and its size (the published difference, one
    run's, lies in the range one pair of runs gives)."""
    if math.isnan(low):
        return "too few seeds"
    if published is None:
        return "no published value"
    if low <= 0 <= high:
        return "within noise"
    if (low > 0) != (published > 0):
        return "contradicts"
    return "reproduces" if one_pair[0] <= published <= one_pair[1] else "same sign, another size"
