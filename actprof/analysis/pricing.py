"""Seconds to an accuracy, priced on a stack: the steps a run needed × what a step costs on that stack.

A run's curve counts steps (the fast trainer computes the same function as the plain network, so the count
holds for any stack); ``steps.json`` says what a step of each activation's network costs on each stack,
measured side by side. An activation's seconds on a stack are its steps × the baseline's step time × its step
ratio to the baseline (the median of per-round ratios), and the ratio's 95% interval is carried into the
interval of the seconds saved.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from actprof.analysis.evidence import paired, resolution, steps_resolution
from actprof.errors import UsageError
from actprof.schema.profiling import Interval
from actprof.schema.reports import PairedComparison
from actprof.schema.steps import StepCostRecord
from actprof.schema.training import ModelRecord, TrainResult, time_to
from actprof.settings.training import optimizer_words


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


# How a stack's identity names the run's optimizer beyond its words (``optimizer_words``).
_IMPLEMENTATIONS = (" (torch's default implementation)", " (fused)")


def check_timed_as_trained(steps: StepCostRecord, models: Sequence[ModelRecord]) -> None:
    """Refuse, in one line, step times measured for another network or recipe than these runs trained with
    (another --model, batch, precision, device or optimizer): priced on them, the seconds would be another
    network's. What a record does not say (older ones: the optimizer) is not compared."""
    runs = [r for m in models if m.rewrite is None for r in m.all_runs]
    timed = {
        "network": {steps.architecture},
        "batch": {str(steps.batch)},
        "precision": {i.precision for i in steps.stacks},
        "device": {i.device for i in steps.stacks},
        "optimizer": {_optimizer(i.optimizer) for i in steps.stacks if i.optimizer},
    }
    trained = {
        "network": {r.model.architecture for r in runs},
        "batch": {str(r.config.batch_size) for r in runs},
        "precision": {r.config.precision for r in runs if r.config.precision != "auto"},
        "device": {r.config.device for r in runs},
        "optimizer": {optimizer_words(r.config) for r in runs},
    }
    for what, theirs in timed.items():
        mine = trained[what]
        if theirs and mine and mine != theirs:
            raise UsageError(
                f"steps.json was timed with {what} {_listed(theirs)}, but these models trained with {what} "
                f"{_listed(mine)}: its step times are another network's; re-run actprof step-time on these models"
            )


def _optimizer(identity: str) -> str:
    return next((identity.removesuffix(s) for s in _IMPLEMENTATIONS if identity.endswith(s)), identity)


def _listed(values: set[str]) -> str:
    return ", ".join(sorted(values))


def seconds_what(target: float, stack: str) -> str:
    """How the comparison of seconds to ``target`` is named: "seconds to 97% (eager)"; on the runs' own clock
    (no stack priced), "seconds to 97%"."""
    return f"seconds to {100 * target:.0f}%" + (f" ({stack})" if stack else "")


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

    The widened interval is the hull of the t intervals at the ratio's low end, centre and high end, and the
    p-value is the largest of the three: it is under 0.05 exactly where all three intervals exclude 0, on the
    same side (the widened interval excludes 0), so p and the interval never disagree. Significant only
    there. None without a step cost for the activation."""
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

    ends = [at(ratio.low), at(ratio.value), at(ratio.high)]
    center = ends[1]
    if center.n < 2 or math.isnan(center.low):
        return center
    low, high = min(c.low for c in ends), max(c.high for c in ends)
    significant = all(c.significant for c in ends) and (low > 0 or high < 0)
    return replace(center, low=low, high=high, p_value=max(c.p_value for c in ends), significant=significant)


def compare_priced(
    what: str,
    mine: Sequence[TrainResult],
    theirs: Sequence[TrainResult],
    *,
    target: float,
    pricing: Pricing,
    activation: str,
) -> PairedComparison | None:
    """``priced_comparison`` at the median validation bracket (in steps) of the crossings compared."""
    width = resolution([*mine, *theirs], functools.partial(steps_resolution, target=target))
    return priced_comparison(
        what, mine, theirs, target=target, pricing=pricing, activation=activation, resolution_steps=width
    )
