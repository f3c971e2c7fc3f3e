"""The decision table: one row per activation, best first — steps and seconds to the target against the
baseline (seconds priced on the training stack), the seconds saved, the latency ratio on every deployment, the
break-even and one word."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from actprof.analysis.calls import CALLS
from actprof.analysis.verdict import latency_at
from actprof.report.format import interval, p_words

if TYPE_CHECKING:
    from actprof.schema.reports import ActivationSummary, ReportRecord, Verdict


def decision_rows(report: ReportRecord) -> list[dict[str, str]]:
    """The answer, one row per activation: convergence against the baseline, the test-time cost on every
    deployment profiled (ratio at batch 1 [95% CI]), the break-even and one word, best calls first.

    The word and the break-even are for the first deployment target profiled (``primary_target``); an exact
    rewrite shares its original's training and differs only in inference."""
    targets = list(dict.fromkeys((v.provider, v.precision) for v in report.verdicts))
    primary = {v.activation: v for v in report.verdicts if (v.provider, v.precision) == targets[0]} if targets else {}
    by_target = {(v.activation, v.provider, v.precision): v for v in report.verdicts}
    level = target_label(report)
    rows: list[tuple[tuple[int, float, str], dict[str, str]]] = []
    order = {word: i for i, word in enumerate(CALLS)}
    saved = {v.activation: v.train_seconds_saved for v in primary.values()}
    for s in report.activations:
        v = primary.get(s.name)
        if v is None:
            continue
        original = s.name.split("+")[0]
        row = {"activation": s.name}
        if report.lr_study is not None:
            row["best lr"] = "—" if s.lr is None else f"{s.lr:g}"
        on = f" on {report.train_stack}" if report.train_stack else ""
        row |= {
            f"steps to {level} (vs {report.baseline})": _steps_race(v) if s.rewrite is None else f"as {original}",
            f"s{on} (vs {report.baseline})": _race(v) if s.rewrite is None else f"as {original}",
            "s saved [95% CI]": _saved(v) if s.rewrite is None else "—",
            "evidence": _evidence(v) if s.rewrite is None else "—",
        }
        for provider, precision in targets:
            other = by_target.get((s.name, provider, precision))
            ratio = _ratio_at_batch1(s, provider, precision)
            row[f"× {report.baseline}, {provider} {precision}"] = ratio if other else "—"
        row["break-even (inferences)"] = _break_even_words(v)
        row["verdict"] = v.call or "—"
        # best call first; within a call, most seconds saved first (a rewrite at its original's place)
        most_saved = saved.get(original)
        rows.append(((order.get(row["verdict"], len(order)), -(most_saved or -math.inf), s.name), row))
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


def primary_target(report: ReportRecord) -> str:
    """The deployment target the decision table's words are for, e.g. "cpu fp32"."""
    first = next(iter(report.verdicts), None)
    return f"{first.provider} {first.precision}" if first else "none"


def _steps_race(v: Verdict) -> str:
    mine = "not reached" if v.train_steps is None else f"{v.train_steps:.0f}"
    theirs = "not reached" if v.baseline_train_steps is None else f"{v.baseline_train_steps:.0f}"
    return f"{mine} vs {theirs}"


def _race(v: Verdict) -> str:
    mine = "not reached" if v.train_seconds is None else f"{v.train_seconds:.1f}"
    theirs = "not reached" if v.baseline_train_seconds is None else f"{v.baseline_train_seconds:.1f}"
    return f"{mine} vs {theirs}"


def _saved(v: Verdict) -> str:
    c = v.training
    if c is not None and c.n >= 2 and not math.isnan(c.low):
        return f"{-c.mean_difference:+.1f} [{-c.high:+.1f}, {-c.low:+.1f}]"
    if v.train_seconds_saved is None:
        return "—"
    seeds = "1 seed" if v.seeds < 2 else f"too few pairs: reached {v.seeds_reached}/{v.seeds}"
    return f"{v.train_seconds_saved:+.1f} ({seeds})"


def _evidence(v: Verdict) -> str:
    c = v.training
    if c is not None and c.n >= 2:
        return f"{p_words(c.p_value)}, {c.reached}" if not math.isnan(c.p_value) else c.reached
    if c is not None:  # several seeds, too few of them reached the target to pair
        return f"reached {c.reached}"
    return "one seed" if v.train_seconds is not None or v.baseline_train_seconds is not None else "—"


def _ratio_at_batch1(s: ActivationSummary, provider: str, precision: str) -> str:
    brief = latency_at(s, provider, 1, precision)
    return interval(brief.vs_baseline, ".2f", "×") if brief else "—"


def _break_even_words(v: Verdict) -> str:
    if v.call == "wins":
        return "pays at any volume"
    if v.call in ("loses", "tie", "unsettled", "incomplete", ""):
        return "never pays" if v.call == "loses" else "—"
    if v.break_even_batch1 is not None:
        within = (
            " (gain within noise)"
            if v.training is not None and v.training.n >= 2 and not v.training.significant
            else ""
        )
        return f"first {v.break_even_batch1:,.0f}{within}"
    saved, lost = v.train_seconds_saved, v.ms_lost_per_image_batch1
    if saved is not None and saved < 0 and lost is not None and lost.value < 0:  # slower to train, cheaper to run
        return f"after {saved / (lost.value / 1e3):,.0f}"
    return "—"


def trained(report: ReportRecord) -> list[ActivationSummary]:
    """The activations as trained: exact rewrites share their original's training, so they are left out."""
    return [s for s in report.activations if s.rewrite is None]


def target_label(report: ReportRecord) -> str:
    """The report's target as column headers name it: "97%", or "target" where the baseline reached none."""
    return f"{100 * report.target_accuracy:.0f}%" if report.target_accuracy else "target"
