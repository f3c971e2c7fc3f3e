"""The answer: per activation against the baseline, training time saved, inference time lost, and the
break-even number of inferences after which the faster-converging activation stops paying for itself.
``words`` says each verdict in a sentence; ``gate`` compares two result sets.
"""

from __future__ import annotations

import math
from dataclasses import replace

from actprof.analysis import learning_rate, words
from actprof.analysis.evidence import compare, estimate, run_seconds, seed_metrics
from actprof.errors import UsageError
from actprof.schema.profiling import Interval, ProfileRecord
from actprof.schema.reports import ActivationSummary, LatencyBrief, PairedComparison, ReportRecord, Verdict
from actprof.schema.storage import header
from actprof.schema.training import ModelRecord, TimeToAccuracy, TrainResult, reached, time_to
from actprof.settings.training import recipe_words


def summarize(record: ModelRecord, profile: ProfileRecord | None, target: float | None = None) -> ActivationSummary:
    name = record.name
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
        onnx_test_accuracy=record.export.onnx_test_accuracy,
        images_per_second=record.train.images_per_second,
        time_to_accuracy=_with_target(record.train, target),
        mean_activation=[s.mean_activation for s in record.train.layer_stats],
        dead_fraction=[s.dead_fraction for s in record.train.layer_stats],
        latency=latency,
        rewrite=record.rewrite,
        lr=record.train.config.lr,
        recipe=recipe_words(record.train.model),
        contended_runs=sum(r.contended for r in record.all_runs),
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
    act: ActivationSummary, base: ActivationSummary, *, target: float | None, provider: str, precision: str = "fp32"
) -> Verdict:
    """The verdict for one deployment target: ``provider`` at inference ``precision``."""
    batches = sorted({r.batch for r in act.latency if (r.provider, r.precision) == (provider, precision)})
    largest = batches[-1] if batches else None
    lost_b1 = _ms_lost(latency_at(act, provider, 1, precision), latency_at(base, provider, 1, precision))
    lost_big = (
        _ms_lost(latency_at(act, provider, largest, precision), latency_at(base, provider, largest, precision))
        if largest
        else None
    )
    t_act = seconds_to(act, target) if target else None
    t_base = seconds_to(base, target) if target else None
    saved = t_base - t_act if t_act is not None and t_base is not None else None
    training = next((c for c in act.vs_baseline if target and c.what == f"seconds to {100 * target:.0f}%"), None)
    if training is not None and training.n >= 2:  # several seeds: means, and the paired difference
        t_act = estimate(act.seconds_to_target).mean
        t_base = estimate(base.seconds_to_target).mean
        saved = -training.mean_difference
    elif t_base is not None and len(base.seconds_to_target) > 1:  # too few pairs: still the baseline's mean
        t_base = estimate(base.seconds_to_target).mean
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
        train_resolution_s=_resolution_at(act, base, target),
    )
    return _with_summary(verdict)


def _resolution_at(act: ActivationSummary, base: ActivationSummary, target: float | None) -> float | None:
    widths = [
        hit.resolution_seconds
        for s in (act, base)
        if target and (hit := reached(s.time_to_accuracy, target)) and hit.resolution_seconds is not None
    ]
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
    return replace(v, summary=words.sentence(v), call=call(v))


CALLS = ("wins", "trade-off", "tie", "loses", "incomplete")  # the decision table's order


def training_direction(v: Verdict) -> str:
    """faster | slower | same | unknown: reaching the target against the baseline (same: within noise)."""
    if math.isnan(v.target_accuracy) or (v.train_seconds is None and v.baseline_train_seconds is None):
        return "unknown"
    if v.train_seconds is None:
        return "slower"  # never reached what the baseline reached
    if v.baseline_train_seconds is None:
        return "faster"
    saved = v.train_seconds_saved or 0.0
    if v.training is not None and v.training.n >= 2 and not v.training.significant:
        return "same"
    if (v.training is None or v.training.n < 2) and v.train_resolution_s and abs(saved) <= v.train_resolution_s:
        return "same"  # one seed, and the difference is inside the validation bracket
    return "faster" if saved > 0 else "slower" if saved < 0 else "same"


def inference_direction(v: Verdict) -> str:
    """costlier | cheaper | same | unknown at batch 1 on the verdict's deployment target (same: CI spans 0)."""
    lost = v.ms_lost_per_image_batch1
    if lost is None:
        return "unknown"
    return "costlier" if lost.low > 0 else "cheaper" if lost.high < 0 else "same"


def call(v: Verdict) -> str:
    """One word for the trade: wins (no worse on either side, better on one), loses (the reverse), trade-off
    (better on one side, worse on the other: the break-even decides), tie, or incomplete."""
    train, infer = training_direction(v), inference_direction(v)
    if "unknown" in (train, infer):
        return "incomplete"
    better = (train == "faster") + (infer == "cheaper")
    worse = (train == "slower") + (infer == "costlier")
    if better and worse:
        return "trade-off"
    return "wins" if better else "loses" if worse else "tie"


def with_evidence(
    summary: ActivationSummary, record: ModelRecord, base: ModelRecord, target: float | None
) -> ActivationSummary:
    """Seeds, estimates over seeds, and comparisons with the baseline paired by seed."""
    runs = record.runs
    metrics = seed_metrics(target)
    base_by_seed = {r.config.seed: r for r in base.runs}
    common = [(r, base_by_seed[r.config.seed]) for r in runs if r.config.seed in base_by_seed]
    comparisons = []
    if record is not base and len(common) > 1:
        mine, theirs = [a for a, _ in common], [b for _, b in common]
        comparisons = [compare(name, metric, mine, theirs) for name, metric in metrics.items()]
    return replace(
        summary,
        over_seeds={name: estimate([value(r) for r in runs]) for name, (value, _, _) in metrics.items()},
        seeds=[r.config.seed for r in runs],
        seconds_to_target=[run_seconds(r, target) for r in runs] if target else [],
        vs_baseline=comparisons,
    )


def one_architecture(models: list[ModelRecord]) -> str:
    """The network every model was trained in: one report compares activations in one network."""
    found = sorted({m.architecture for m in models})
    if len(found) > 1:
        raise UsageError(
            f"the models directory mixes networks ({', '.join(found)}); train each --model into its own --models"
        )
    return found[0]


def build(
    models: list[ModelRecord], profile: ProfileRecord | None, *, baseline: str, target: float | None = None
) -> ReportRecord:
    architecture = one_architecture(models)
    base_record = next((m for m in models if m.name == baseline), None)
    if base_record is None:
        names = ", ".join(m.name for m in models)
        raise UsageError(f"--baseline {baseline!r} has no trained model here (have: {names}); train it first")
    if target is None:
        target, rule = default_target(base_record)
    else:
        rule = "chosen with --target"
    summaries = [summarize(m, profile, target) for m in models]
    summaries = [with_evidence(s, m, base_record, target) for s, m in zip(summaries, models, strict=True)]
    base = next(s for s in summaries if s.name == baseline)
    targets = list(dict.fromkeys((r.provider, r.precision) for s in summaries for r in s.latency)) or [("cpu", "fp32")]
    verdicts = [
        judge(s, base, target=target, provider=provider, precision=precision)
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
        lr_study=learning_rate.study(models, base_record, target),
    )
