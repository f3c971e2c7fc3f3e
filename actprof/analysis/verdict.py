"""The answer: per activation against the baseline, training time saved, inference time lost, and the
break-even number of inferences after which the faster-converging activation stops paying for itself.
``words`` says each verdict in a sentence; ``gate`` compares two result sets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from actprof.analysis import calls, learning_rate, words
from actprof.analysis.evidence import compare, estimate, run_seconds, seed_metrics
from actprof.analysis.pricing import Pricing, check_timed_as_trained, compare_priced, seconds_what, steps_to
from actprof.errors import UsageError
from actprof.schema.profiling import Interval, ProfileRecord
from actprof.schema.reports import (
    ActivationSummary,
    LatencyBrief,
    PairedComparison,
    ReportRecord,
    StepBrief,
    Verdict,
)
from actprof.schema.steps import StepCostRecord
from actprof.schema.storage import header
from actprof.schema.training import ModelRecord, TimeToAccuracy, TrainResult, reached, time_to
from actprof.settings.training import optimizer_words, recipe_words


def summarize(
    record: ModelRecord,
    profile: ProfileRecord | None,
    target: float | None = None,
    steps: StepCostRecord | None = None,
) -> ActivationSummary:
    name = record.name
    trained_as = name.split("+")[0]  # an exact rewrite trains as its original
    step_briefs = [
        StepBrief(c.stack, c.stats.p50_ms, c.vs_baseline, c.compile_seconds)
        for c in (steps.costs if steps else [])
        if c.activation == trained_as
    ]
    latency = [
        LatencyBrief(
            r.provider, r.batch, r.mode, r.stats.p50_ms, r.stats.p99_ms, r.vs_baseline, r.precision, r.vs_baseline_ms
        )
        for r in (profile.latency if profile else [])
        if r.model == name and r.variant == "as-trained"
    ]
    return ActivationSummary(
        name=name,
        init=record.activation.init,
        precision=record.train.config.precision,
        dataset=f"{record.dataset.kind} ({record.dataset.n_train:,} train)",
        epochs=record.train.config.epochs,
        test_accuracy=record.train.test_accuracy,
        test_images=record.dataset.n_test,
        onnx_test_accuracy=record.export.onnx_test_accuracy,
        images_per_second=record.train.images_per_second,
        time_to_accuracy=_with_target(record.train, target),
        mean_activation=[s.mean_activation for s in record.train.layer_stats],
        dead_fraction=[s.dead_fraction for s in record.train.layer_stats],
        latency=latency,
        rewrite=record.rewrite,
        lr=record.train.config.lr,
        recipe=f"{optimizer_words(record.train.config)}, batch {record.train.config.batch_size}, "
        + recipe_words(record.train.model),
        contended_runs=sum(r.contended for r in record.all_runs),
        steps=step_briefs,
    )


def _with_target(run: TrainResult, target: float | None) -> list[TimeToAccuracy]:
    """The times to 90…99% and to the report's target, each read off the curve the same way."""
    targets = {t.target for t in run.time_to_accuracy} | ({target} if target is not None else set())
    return [time_to(run.validation, t) for t in sorted(targets)]  # re-read: older records were not interpolated


def seconds_to(summary: ActivationSummary, target: float) -> float | None:
    hit = reached(summary.time_to_accuracy, target)
    return hit.seconds if hit else None


LEARNED = learning_rate.LEARNED


def default_target(baseline: ModelRecord) -> tuple[float | None, str]:
    """The target every activation is judged on, and the rule in words: the highest whole percent of
    validation accuracy the baseline reached in every seed (so the baseline itself always reaches it)."""
    target = learning_rate.common_target(baseline.runs)
    if target is None:
        return None, f"none: {baseline.name} never passed {100 * LEARNED:.0f}% validation accuracy"
    seeds = f"in every one of its {len(baseline.runs)} seeds" if len(baseline.runs) > 1 else "in its run"
    return target, f"the highest whole percent of validation accuracy {baseline.name} reached {seeds}"


def latency_at(summary: ActivationSummary, provider: str, batch: int, precision: str = "fp32") -> LatencyBrief | None:
    return next(
        (
            r
            for r in summary.latency
            if (r.provider, r.batch, r.precision) == (provider, batch, precision) and r.mode == "compute"
        ),
        None,
    )


def _ms_lost(act: LatencyBrief | None, base: LatencyBrief | None) -> Interval | None:
    """Activation − baseline: the median of per-round differences with that median's CI (older records,
    without it: the median per-round ratio and its CI, both scaled by the baseline's p50 — one statistic)."""
    if act is None or base is None or act.vs_baseline is None:
        return None
    if act.vs_baseline_ms is not None:
        return act.vs_baseline_ms
    r = act.vs_baseline  # older records: the median ratio and its interval, both mapped onto the baseline's ms
    return Interval(base.p50_ms * (r.value - 1), base.p50_ms * (r.low - 1), base.p50_ms * (r.high - 1), r.n)


def _break_even(saved_s: float | None, lost_ms: Interval | None, images: int) -> float | None:
    """Inferences (of ``images`` each) after which the time saved in training is used up."""
    if saved_s is None or lost_ms is None or saved_s <= 0 or lost_ms.value <= 0:
        return None
    return saved_s / (lost_ms.value / 1e3) * images


def judge(
    act: ActivationSummary,
    base: ActivationSummary,
    *,
    target: float | None,
    provider: str,
    precision: str = "fp32",
    stack: str = "",
) -> Verdict:
    """The verdict for one deployment target: ``provider`` at inference ``precision``, with the training
    seconds priced on ``stack`` (steps × its step time; "": the runs' own clock)."""
    batches = sorted({r.batch for r in act.latency if (r.provider, r.precision) == (provider, precision)})
    largest = batches[-1] if batches else None
    lost_b1 = _ms_lost(latency_at(act, provider, 1, precision), latency_at(base, provider, 1, precision))
    lost_big = (
        _ms_lost(latency_at(act, provider, largest, precision), latency_at(base, provider, largest, precision))
        if largest
        else None
    )
    t_act, t_base = (_mean_or_one(s.seconds_to_target) for s in (act, base))
    saved = t_base - t_act if t_act is not None and t_base is not None else None
    what = seconds_what(target, stack) if target else ""
    training = next((c for c in act.vs_baseline if target and c.what == what), None)
    if training is not None and training.n >= 2:  # several seeds: the paired difference
        saved = -training.mean_difference
    noise = [iv for iv in (lost_b1, lost_big) if iv is not None]
    within_noise = bool(noise) and all(iv.low <= 0 <= iv.high for iv in noise)
    verdict = Verdict(
        activation=act.name,
        baseline=base.name,
        provider=provider,
        target_accuracy=target or math.nan,
        train_seconds=t_act,
        baseline_train_seconds=t_base,
        train_seconds_saved=saved,
        ms_lost_per_image_batch1=lost_b1,
        largest_batch=largest,
        ms_lost_per_batch=lost_big,
        break_even_batch1=_break_even(saved, lost_b1, 1),
        break_even_largest=_break_even(saved, lost_big, largest or 1) if largest else None,
        latency_within_noise=within_noise,
        summary="",
        training=training,
        break_even_batch1_range=_break_even_range(training, lost_b1),
        precision=precision,
        train_resolution_s=_resolution_at(act, base, target, stack),
        train_stack=stack,
        train_steps=_mean_or_one(act.steps_to_target),
        baseline_train_steps=_mean_or_one(base.steps_to_target),
        seeds=min(len(act.steps_to_target), len(base.steps_to_target)),
        seeds_reached=sum(s is not None for s in act.steps_to_target),
        baseline_seeds_reached=sum(s is not None for s in base.steps_to_target),
    )
    return _with_summary(verdict)


def _mean_or_one(values: list[float | None]) -> float | None:
    """The mean over the seeds that have a value; None where none has."""
    found = [v for v in values if v is not None]
    return estimate(found).mean if found else None


def _resolution_at(act: ActivationSummary, base: ActivationSummary, target: float | None, stack: str) -> float | None:
    """The wider of the two validation brackets the target's crossings were read in, in seconds (on the stack:
    the bracket's steps × that side's step time)."""
    widths = []
    for s in (act, base):
        hit = reached(s.time_to_accuracy, target) if target else None
        if hit is None or hit.resolution_steps is None:
            continue
        step = next((b.ms / 1e3 for b in s.steps if b.stack == stack), None) if stack else None
        widths.append(hit.resolution_steps * step if step is not None else hit.resolution_seconds)
    widths = [w for w in widths if w is not None]
    return max(widths) if widths else None


def _break_even_range(training: PairedComparison | None, lost: Interval | None) -> list[float]:
    """[low, high] break-even at batch 1 from the training-time CI and the latency CI together."""
    if training is None or training.n < 2 or lost is None:
        return []
    saved_low, saved_high = -training.high, -training.low
    if min(saved_low, lost.low) <= 0 or math.isnan(saved_low):
        return []  # an interval that reaches zero: the break-even is unbounded
    return [saved_low / (lost.high / 1e3), saved_high / (lost.low / 1e3)]


def _with_summary(v: Verdict) -> Verdict:
    v = replace(v, unsettled=calls.unsettled_reason(v))
    return replace(v, summary=words.sentence(v), call=calls.call(v))


def with_evidence(
    summary: ActivationSummary,
    record: ModelRecord,
    base: ModelRecord,
    target: float | None,
    pricing: Pricing | None = None,
) -> ActivationSummary:
    """Seeds, estimates over seeds, and comparisons with the baseline paired by seed; with ``pricing``, the
    seconds to the target priced on its stack (steps × step time) beside those of the runs' own clock."""
    runs = record.runs
    metrics = seed_metrics(target)
    base_by_seed = {r.config.seed: r for r in base.runs}
    common = [(r, base_by_seed[r.config.seed]) for r in runs if r.config.seed in base_by_seed]
    trained_as = record.activation.name
    comparisons = []
    if record is not base and len(common) > 1:
        mine, theirs = [a for a, _ in common], [b for _, b in common]
        comparisons = [compare(name, metric, mine, theirs) for name, metric in metrics.items()]
        if pricing is not None and target is not None:
            what = seconds_what(target, pricing.stack)
            priced = compare_priced(what, mine, theirs, target=target, pricing=pricing, activation=trained_as)
            comparisons += [priced] if priced is not None else []
    over_seeds = {name: estimate([value(r) for r in runs]) for name, (value, _, _) in metrics.items()}
    seconds = [run_seconds(r, target) for r in runs] if target else []
    if pricing is not None and target is not None:
        seconds = pricing.seconds(runs, trained_as, target)
        over_seeds[seconds_what(target, pricing.stack)] = estimate(seconds)
    return replace(
        summary,
        over_seeds=over_seeds,
        seeds=[r.config.seed for r in runs],
        seconds_to_target=seconds,
        steps_to_target=[steps_to(r, target) for r in runs] if target else [],
        vs_baseline=comparisons,
        trainer_differs=_trainer_differs(record, base),
    )


def _trainer_differs(record: ModelRecord, base: ModelRecord) -> str:
    """The fast trainer's speed-ups where a run of this activation had others than the baseline's run it is
    paired with (the same seed; in a sweep, the same rate and seed), in words with the seeds."""
    if record is base:
        return ""
    pairs = _seed_pairs(record.runs, base.runs, lambda r: r.config.seed)
    pairs += _seed_pairs(record.all_runs, base.all_runs, lambda r: (r.config.lr, r.config.seed))
    differ: dict[tuple[str, str], set[int]] = {}
    for mine, theirs in pairs:
        if mine.trainer is None or theirs.trainer is None:
            continue
        key = (mine.trainer.machine(), theirs.trainer.machine())
        if key[0] != key[1]:
            differ.setdefault(key, set()).add(mine.config.seed)
    return "; ".join(
        f"{mine} (the baseline: {theirs}) in seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, sorted(seeds)))}"
        for (mine, theirs), seeds in sorted(differ.items())
    )


def _seed_pairs(
    mine: list[TrainResult], theirs: list[TrainResult], key: Callable[[TrainResult], object]
) -> list[tuple[TrainResult, TrainResult]]:
    by_key = {key(r): r for r in theirs}
    return [(r, by_key[key(r)]) for r in mine if key(r) in by_key]


def _network_key(record: ModelRecord) -> str:
    model = record.train.model
    knobs = [name for name, on in (("batch norm", model.batch_norm), ("standardized", model.standardize)) if on]
    return model.architecture + (f" ({', '.join(knobs)})" if knobs else "")


def one_architecture(models: list[ModelRecord]) -> str:
    """The network every model was trained in: one report compares activations in one network."""
    found = sorted({_network_key(m) for m in models})
    if len(found) > 1:
        raise UsageError(
            f"the models directory mixes networks ({', '.join(found)}); train each --model into its own --models"
        )
    return models[0].architecture


def network_words(record: ModelRecord) -> str:
    """The network in words with its parameter count, where the record says (older records: the spec's words)."""
    network = record.train.network
    return network.summary if network else ""


def build(
    models: list[ModelRecord],
    profile: ProfileRecord | None,
    *,
    baseline: str,
    target: float | None = None,
    steps: StepCostRecord | None = None,
    stack: str = "",
) -> ReportRecord:
    """The report: every activation summarized against the baseline, and a verdict per deployment target.
    ``stack``: price the training seconds on it (its step times in ``steps``); "": on the runs' own clock."""
    architecture = one_architecture(models)
    base_record = next((m for m in models if m.name == baseline), None)
    if base_record is None:
        names = ", ".join(m.name for m in models)
        raise UsageError(f"--baseline {baseline!r} has no trained model here (have: {names}); train it first")
    if target is None:
        target, rule = default_target(base_record)
    else:
        rule = "chosen with --target"
    if steps is not None:
        check_timed_as_trained(steps, models)
    pricing = Pricing.of(steps, stack, baseline) if stack else None
    if stack and pricing is None:
        raise UsageError(
            f"--train-stack {stack}: no step time was measured on {stack} for {baseline} here; run actprof "
            f"step-time --stacks {stack} (actprof run measures eager and actprof)"
        )
    summaries = [summarize(m, profile, target, steps) for m in models]
    summaries = [with_evidence(s, m, base_record, target, pricing) for s, m in zip(summaries, models, strict=True)]
    base = next(s for s in summaries if s.name == baseline)
    targets = list(dict.fromkeys((r.provider, r.precision) for s in summaries for r in s.latency)) or [("cpu", "fp32")]
    verdicts = [
        judge(s, base, target=target, provider=provider, precision=precision, stack=pricing.stack if pricing else "")
        for provider, precision in targets
        for s in summaries
        if s.name != baseline
    ]
    return ReportRecord(
        **{**header("report"), **({"environment": profile.environment} if profile else {})},
        baseline=baseline,
        target_accuracy=target,
        activations=summaries,
        verdicts=verdicts,
        profile_created=profile.created if profile else None,
        target_rule=rule,
        architecture=architecture,
        network=network_words(base_record),
        lr_study=learning_rate.study(models, base_record, target, pricing),
        train_stack=pricing.stack if pricing else "",
        stacks=list(steps.stacks) if steps else [],
    )
