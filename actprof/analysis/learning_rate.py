"""Reading a learning-rate sweep: activations compared each at its own best rate, and all at one shared rate.

Every choice here is made on the validation split, never on the test set: an activation's rate by its
mean final validation accuracy over seeds (``sweep.choose_lr``, at training time), and the shared rate as
the one with the highest such accuracy averaged over all activations. The headline verdict uses each
activation's chosen rate; the shared-rate comparison shows what a single-rate study would have said.

Times to the target are on the verdict's clock: seconds priced on its stack (steps × that stack's step time,
``analysis.pricing``) where a step time was measured, else steps; never the runs' own clock, which counts
whatever speed-ups the trainer had.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from actprof.analysis.evidence import compare, estimate, steps_metric
from actprof.analysis.pricing import Pricing, compare_priced, seconds_what, steps_to
from actprof.schema.reports import LrCell, LrStudy, SharedLrComparison
from actprof.schema.training import ModelRecord, TrainResult

LEARNED = 0.2  # a baseline whose best validation accuracy stays under this learned nothing to compare against


def common_target(runs: Sequence[TrainResult]) -> float | None:
    """The highest whole percent of validation accuracy every one of ``runs`` reached (None: under 20%)."""
    best = min((max((p.val_accuracy for p in run.validation), default=0.0) for run in runs), default=0.0)
    return None if best < LEARNED else math.floor(100 * best + 1e-9) / 100


SHARED_RULE = (
    "the rate with the highest final validation accuracy averaged over every activation and seed "
    "(validation split, never the test set)"
)


def study(
    models: Sequence[ModelRecord], baseline: ModelRecord, target: float | None, pricing: Pricing | None = None
) -> LrStudy | None:
    """The sweep's cells and the shared-rate comparison (None: no record here swept more than one rate), timed
    in seconds on ``pricing``'s stack (None: in steps)."""
    trained = [m for m in models if m.rewrite is None]
    if not any(m.lr_choice for m in trained):
        return None
    lrs = sorted({r.config.lr for m in trained for r in m.all_runs})
    shared = shared_lr(trained, lrs)
    # At the shared rate the baseline may not reach the headline target: judge with the same rule there.
    shared_target = common_target(at_lr(baseline, shared))
    return LrStudy(
        lrs=lrs,
        rule=next(m.lr_choice.rule for m in trained if m.lr_choice),
        cells=[cell(m, lr, target, pricing) for m in trained for lr in lrs if at_lr(m, lr)],
        shared_lr=shared,
        shared_rule=SHARED_RULE,
        at_shared=[at_shared(m, baseline, shared, shared_target, pricing) for m in trained if at_lr(m, shared)],
        shared_target=shared_target,
    )


def at_lr(record: ModelRecord, lr: float) -> list[TrainResult]:
    """An activation's runs at one learning rate, in seed order."""
    return sorted((r for r in record.all_runs if r.config.lr == lr), key=lambda r: r.config.seed)


def to_target(record: ModelRecord, runs: Sequence[TrainResult], target: float | None, pricing: Pricing | None):
    """Each run's time to ``target``: seconds on ``pricing``'s stack, or steps without one (None: not reached,
    or no step time for this activation there)."""
    if target is None:
        return [None for _ in runs]
    if pricing is None:
        return [steps_to(r, target) for r in runs]
    return pricing.seconds(runs, record.activation.name, target)


def cell(record: ModelRecord, lr: float, target: float | None, pricing: Pricing | None = None) -> LrCell:
    runs = at_lr(record, lr)
    return LrCell(
        activation=record.name,
        lr=lr,
        val_accuracy=estimate([r.val_accuracy for r in runs]),
        seconds_to_target=estimate(to_target(record, runs, target, pricing)),
        seeds=len(runs),
        chosen=record.train.config.lr == lr,
    )


def shared_lr(models: Sequence[ModelRecord], lrs: Sequence[float]) -> float:
    """The rate every activation was trained at with the best mean final validation accuracy."""
    common = [lr for lr in lrs if all(at_lr(m, lr) for m in models)] or list(lrs)

    def mean_accuracy(lr: float) -> float:
        runs = [r for m in models for r in at_lr(m, lr)]
        return statistics.fmean(r.val_accuracy for r in runs) if runs else float("-inf")

    return max(common, key=lambda lr: (mean_accuracy(lr), -lr))


def at_shared(
    record: ModelRecord, baseline: ModelRecord, lr: float, target: float | None, pricing: Pricing | None = None
) -> SharedLrComparison:
    """Time to the report's target at the shared rate (seconds on ``pricing``'s stack, else steps), paired
    by seed with the baseline's."""
    mine = at_lr(record, lr)
    times = estimate(to_target(record, mine, target, pricing))
    if record is baseline or target is None:
        return SharedLrComparison(record.name, times, None)
    theirs = {r.config.seed: r for r in at_lr(baseline, lr)}
    pairs = [(r, theirs[r.config.seed]) for r in mine if r.config.seed in theirs]
    if len(pairs) < 2:
        return SharedLrComparison(record.name, times, None)
    paired_mine, paired_theirs = [a for a, _ in pairs], [b for _, b in pairs]
    if pricing is None:
        what = f"steps to {100 * target:.0f}% at lr {lr:g}"
        comparison = compare(what, steps_metric(target), paired_mine, paired_theirs)
    else:
        what = f"{seconds_what(target, pricing.stack)} at lr {lr:g}"
        activation = record.activation.name
        comparison = compare_priced(
            what, paired_mine, paired_theirs, target=target, pricing=pricing, activation=activation
        )
    return SharedLrComparison(record.name, times, comparison)
