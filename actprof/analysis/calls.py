"""One word for each verdict — wins, trade-off, tie, loses, unsettled or incomplete — from which way training
and inference went against the baseline, and only where each side stands out of its noise."""

from __future__ import annotations

import math

from actprof.schema.reports import Verdict

CALLS = ("wins", "trade-off", "unsettled", "tie", "loses", "incomplete")  # the decision table's order, best first


def training_direction(v: Verdict) -> str:
    """faster | slower | same | unsettled | unknown: reaching the target against the baseline.

    A difference counts only where it stands out of the seed spread: significant over paired seeds (faster or
    slower), or an interval inside the validation points' resolution (same). One seed has no spread to judge
    against, and an interval that is wider than the resolution and straddles 0 cannot be told from noise:
    both are unsettled (``unsettled_reason`` says why), never a direction."""
    if math.isnan(v.target_accuracy) or (v.train_seconds is None and v.baseline_train_seconds is None):
        return "unknown"
    return _settled_direction(v) or "unsettled"


def _settled_direction(v: Verdict) -> str | None:
    if v.seeds >= 2:  # the baseline reached the target in every seed, it in at most half of them: slower
        if v.baseline_seeds_reached == v.seeds and 2 * v.seeds_reached <= v.seeds:
            return "slower"
        if v.seeds_reached == v.seeds and 2 * v.baseline_seeds_reached <= v.seeds:
            return "faster"
    c = v.training
    if c is None or c.n < 2 or math.isnan(c.low):
        return None
    if c.significant:
        return "faster" if c.mean_difference < 0 else "slower"
    margin = v.train_resolution_s
    if margin and -margin <= c.low and c.high <= margin:
        return "same"
    return None


def unsettled_reason(v: Verdict) -> str:
    """Why the training side cannot be told from noise ("" where it can)."""
    if training_direction(v) != "unsettled":
        return ""
    c = v.training
    if v.seeds < 2:
        return "one seed has no spread to tell a difference from chance: train with --seeds 3 or more"
    if c is None or c.n < 2:
        return (
            f"it reached the target in {v.seeds_reached} of {v.seeds} seeds and {v.baseline} in "
            f"{v.baseline_seeds_reached}: too few pairs to compare; more seeds would settle it"
        )
    width = (
        f", wider than the ±{v.train_resolution_s:.2f} s the validation points resolve" if v.train_resolution_s else ""
    )
    return (
        f"the seconds saved lie in [{-c.high:+.2f}, {-c.low:+.2f}] s over {c.n} paired seeds{width}: "
        "more seeds would settle it"
    )


def inference_direction(v: Verdict) -> str:
    """costlier | cheaper | same | unknown at batch 1 on the verdict's deployment target (same: CI spans 0)."""
    lost = v.ms_lost_per_image_batch1
    if lost is None:
        return "unknown"
    return "costlier" if lost.low > 0 else "cheaper" if lost.high < 0 else "same"


def call(v: Verdict) -> str:
    """One word for the trade: wins (no worse on either side, better on one), loses (the reverse), trade-off
    (better on one side, worse on the other: the break-even decides), tie, unsettled (the training side
    cannot be told from noise) or incomplete."""
    train, infer = training_direction(v), inference_direction(v)
    if "unknown" in (train, infer):
        return "incomplete"
    if train == "unsettled":
        return "unsettled"
    better = (train == "faster") + (infer == "cheaper")
    worse = (train == "slower") + (infer == "costlier")
    if better and worse:
        return "trade-off"
    return "wins" if better else "loses" if worse else "tie"
