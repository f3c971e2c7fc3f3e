"""Seconds to an accuracy, priced on a stack: the steps a run needed × what a step costs on that stack.

A run's curve counts steps (the fast trainer computes the same function as the plain network, so the count
holds for any stack); ``steps.json`` says what a step of each activation's network costs on each stack,
measured side by side. An activation's seconds on a stack are its steps × the baseline's step time × its step
ratio to the baseline (the median of per-round ratios), and the ratio's 95% interval is carried into the
interval of the seconds saved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from actprof.analysis.evidence import paired
from actprof.schema.profiling import Interval
from actprof.schema.reports import PairedComparison
from actprof.schema.steps import StepCostRecord
from actprof.schema.training import TrainResult, time_to


@dataclass(frozen=True)
class Pricing:
    """What a step costs on one stack: the baseline's step (seconds) and each activation's ratio to it."""

    stack: str
    baseline_step_s: float
    ratio: dict[str, Interval]  # activation -> its step over the baseline's, median per-round ratio [95% CI]

    @classmethod
    def of(cls, record: StepCostRecord | None, stack: str, baseline: str) -> Pricing | None:
        """The pricing on ``stack`` from a step-cost record (None: none recorded there, or not the baseline's)."""
        if record is None or record.baseline != baseline:
            return None
        costs = {c.activation: c for c in record.costs if c.stack == stack}
        if baseline not in costs:
            return None
        ratios = {name: c.vs_baseline for name, c in costs.items() if c.vs_baseline is not None}
        return cls(stack, costs[baseline].stats.p50_ms / 1e3, ratios)

    def step_s(self, activation: str) -> float | None:
        ratio = self.ratio.get(activation)
        return None if ratio is None else ratio.value * self.baseline_step_s

    def seconds(self, runs: Sequence[TrainResult], activation: str, target: float) -> list[float | None]:
        """Each run's seconds to ``target`` on this stack (None: not reached, or no step cost for it)."""
        step = self.step_s(activation)
        return [None if step is None else _times(steps_to(run, target), step) for run in runs]


def steps_to(run: TrainResult, target: float) -> float | None:
    """The steps a run needed to reach ``target``, interpolated on its curve (None: never reached)."""
    return time_to(run.validation, target).step


def _times(steps: float | None, step_s: float) -> float | None:
    return None if steps is None else steps * step_s


def priced_comparison(
    what: str,
    mine: Sequence[TrainResult],
    theirs: Sequence[TrainResult],
    *,
    target: float,
    pricing: Pricing,
    activation: str,
    resolution_steps: float | None,
) -> PairedComparison | None:
    """``activation`` − baseline in seconds on the pricing's stack, paired by seed: the t interval over seeds
    at the measured step ratio, widened to the ratio's own interval (the difference grows with the ratio).
    Significant only where the widened interval excludes 0. None without a step cost for the activation."""
    ratio = pricing.ratio.get(activation)
    if ratio is None:
        return None
    base_steps = [steps_to(r, target) for r in theirs]
    act_steps = [steps_to(r, target) for r in mine]

    def at(r: float) -> PairedComparison:
        step = pricing.baseline_step_s
        resolution = resolution_steps * step if resolution_steps is not None else None
        return paired(
            what,
            [_times(s, r * step) for s in act_steps],
            [_times(s, step) for s in base_steps],
            higher_is_better=False,
            resolution=resolution,
        )

    center, low, high = at(ratio.value), at(ratio.low), at(ratio.high)
    if center.n < 2 or math.isnan(center.low):
        return center
    widened_low, widened_high = min(low.low, center.low), max(high.high, center.high)
    significant = center.significant and (widened_low > 0 or widened_high < 0)
    return replace(center, low=widened_low, high=widened_high, significant=significant)
