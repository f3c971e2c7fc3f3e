"""A verdict in plain words, with its inputs next to each number (``Verdict.summary``)."""

from __future__ import annotations

import math

from actprof.schema.profiling import Interval
from actprof.schema.reports import Verdict


def deployment(v: Verdict) -> str:
    """How a verdict names its deployment target: "cpu", or "cpu int8" off fp32."""
    return v.provider if v.precision == "fp32" else f"{v.provider} {v.precision}"


def sentence(v: Verdict) -> str:
    """The verdict in plain words, with its inputs next to each number."""
    parts = [f"{v.activation} vs {v.baseline}:"]
    target = f"{100 * v.target_accuracy:.0f}% validation accuracy" if not math.isnan(v.target_accuracy) else None
    if target is None:
        parts.append("the baseline reached no target accuracy, so convergence cannot be compared;")
    elif v.train_seconds is None:
        where = f"in {v.training.reached.split(' vs ')[0]} seeds" if v.training else "in this run"
        took = f"{_steps(v.baseline_train_steps)}{v.baseline_train_seconds:.1f} s{_on(v)}"
        parts.append(f"did not reach {target} {where} ({v.baseline} did, in {took});")
    else:
        saved = v.train_seconds_saved or 0.0
        word = "faster" if saved > 0 else "slower"
        if v.training is not None and v.training.n >= 2:
            c = v.training
            verdict = "significant" if c.significant else "within noise"
            evidence = (
                f"mean over {c.n} paired seeds, 95% CI of the seconds saved [{-c.high:+.1f}, {-c.low:+.1f}] s, "
                f"{_p(c.p_value)}, d_z = {-c.effect_size:+.2f}: {verdict}; reached {c.reached}"
            )
        elif v.seeds >= 2:
            evidence = f"reached in {v.seeds_reached} of {v.seeds} seeds, {v.baseline} in {v.baseline_seeds_reached}"
        elif v.train_resolution_s and abs(saved) <= v.train_resolution_s:
            evidence = f"one seed, and within the ±{v.train_resolution_s:.2f} s the validation points resolve"
        else:
            evidence = "one seed"
        mine = f"{_steps(v.train_steps)}{v.train_seconds:.1f} s"
        theirs = f"{_steps(v.baseline_train_steps)}{v.baseline_train_seconds:.1f} s"
        parts.append(
            f"reached {target} in {mine} vs {theirs}{_on(v)} ({abs(saved):.1f} s {word} to train; {evidence});"
        )
    if v.unsettled:
        parts.append(f"unsettled: {v.unsettled};")
    if v.ms_lost_per_image_batch1 is not None:
        iv = v.ms_lost_per_image_batch1
        parts.append(
            f"{_signed_ms(iv.value)} per image at batch 1 [95% CI {_signed_ms(iv.low)}, {_signed_ms(iv.high)}]"
            f" on {deployment(v)} ({_noise(iv)})"
        )
    if v.ms_lost_per_batch is not None:
        iv = v.ms_lost_per_batch
        parts.append(f"and {_signed_ms(iv.value)} per batch of {v.largest_batch} ({_noise(iv)});")
    training_noise = v.training is not None and v.training.n >= 2 and not v.training.significant
    if v.latency_within_noise:
        parts.append("the inference difference is within noise.")
    elif training_noise and v.break_even_batch1 is not None:
        parts.append(
            f"the training gain is within noise, so no break-even can be claimed (point estimate: "
            f"{v.break_even_batch1:,.0f} single-image inferences); run more seeds to settle it."
        )
    elif v.break_even_batch1 is not None:
        parts.append(
            f"it pays for itself for the first {v.break_even_batch1:,.0f} single-image inferences "
            f"({v.train_seconds_saved:.1f} s saved ÷ {v.ms_lost_per_image_batch1.value:.4f} ms lost each)"
            + (
                f" or {v.break_even_largest:,.0f} images served in batches of {v.largest_batch}"
                if v.break_even_largest
                else ""
            )
            + (
                f" (range from both intervals: {v.break_even_batch1_range[0]:,.0f}–{v.break_even_batch1_range[1]:,.0f})"
                if v.break_even_batch1_range
                else ""
            )
            + f"; after that {v.baseline} is cheaper."
        )
    elif v.ms_lost_per_image_batch1 is None:
        parts.append("no latency was profiled for this deployment: run actprof profile to price inference.")
    elif v.train_seconds_saved is not None and v.train_seconds_saved > 0:
        parts.append("it is also no slower at inference: it pays at any volume.")
    elif training_noise and v.ms_lost_per_image_batch1 is not None and v.ms_lost_per_image_batch1.value > 0:
        parts.append("no training difference beyond noise and slower at inference: it does not pay.")
    elif v.train_seconds is None and v.baseline_train_seconds is None:
        parts.append("train longer (--epochs) or on full MNIST to compare convergence.")
    elif v.ms_lost_per_image_batch1 is not None and v.ms_lost_per_image_batch1.value > 0:
        parts.append("it never pays (no break-even): no faster to train and slower at inference.")
    return " ".join(parts)


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _noise(iv: Interval) -> str:
    return "within noise" if iv.low <= 0 <= iv.high else "significant"


def _signed_ms(x: float) -> str:
    return f"{x:+.4f} ms"


def _steps(steps: float | None) -> str:
    return "" if steps is None else f"{steps:.0f} steps = "


def _on(v: Verdict) -> str:
    """Where the seconds come from: a stack's step time, or the runs' own clock (older results)."""
    return f" on {v.train_stack}" if v.train_stack else ""
