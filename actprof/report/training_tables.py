"""The rows of the training side of a report: how each activation converged, over seeds, against the
baseline, and across learning rates. Plain strings, rendered by ``report`` like every other table.

Seconds are on the verdicts' clock, named in each header: steps × the step time on the stack the verdicts are
priced on; where no step time was measured, the runs' own clock (actprof's trainer, whatever speed-ups it had),
and the learning-rate tables, which compare activations with each other, count steps instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from actprof.analysis.pricing import seconds_what
from actprof.report.decision_tables import target_label, trained
from actprof.report.format import num, p_cell, pct
from actprof.report.step_tables import step_seconds
from actprof.schema.training import reached

if TYPE_CHECKING:
    from actprof.schema.reports import ActivationSummary, LrCell, PairedComparison, ReportRecord
    from actprof.schema.training import ModelRecord


def _reached(record: ModelRecord, target: float) -> tuple[float | None, float | None]:
    hit = reached(record.train.time_to_accuracy, target)
    return (hit.step, hit.seconds) if hit else (None, None)


def _per_layer(values: Sequence[float], fmt: str) -> str:
    return "/".join(format(v, fmt) for v in values)


def training_rows(records: Sequence[ModelRecord]) -> list[dict[str, str]]:
    rows = []
    for r in records:
        steps97, secs97 = _reached(r, 0.97)
        steps98, secs98 = _reached(r, 0.98)
        rows.append(
            {
                "activation": r.name,
                "init": r.activation.init,
                "train prec": r.train.config.precision,
                "test acc": pct(r.train.test_accuracy),
                "ONNX acc": pct(r.export.onnx_test_accuracy),
                "→97% steps/s": f"{num(steps97)} / {num(secs97, '.1f')}",
                "→98% steps/s": f"{num(steps98)} / {num(secs98, '.1f')}",
                "lr": f"{r.train.config.lr:g}",
                "img/s": num(r.train.images_per_second),
                "mean act per layer": _per_layer([s.mean_activation for s in r.train.layer_stats], "+.2f"),
                "dead % per layer": _per_layer([100 * s.dead_fraction for s in r.train.layer_stats], ".0f"),
                "max|Δlogit|": f"{r.export.parity.max_abs_diff:.0e}",
                "ONNX act ops": " ".join(f"{op}×{n}" for op, n in r.export.activation_census.items())
                + (" (decomposed)" if r.export.decomposed else ""),
            }
        )
    return rows


def clock(report: ReportRecord) -> str:
    """Which clock a table's seconds are on, as its header says: "on eager", or "(actprof's clock)"."""
    return f"on {report.train_stack}" if report.train_stack else "(actprof's clock)"


def _seconds_to(report: ReportRecord, summary: ActivationSummary, target: float) -> str:
    """Steps / seconds to ``target`` of the exported run, ± half its validation bracket, on ``clock(report)``."""
    hit = reached(summary.time_to_accuracy, target)
    if hit is None or hit.step is None:
        return "not reached"
    if report.train_stack:
        price = step_seconds(report).get(summary.name.split("+")[0])
        if price is None:
            return f"{hit.step:.1f} / — (no step time)"
        seconds = hit.step * price
        bracket = hit.resolution_steps * price if hit.resolution_steps is not None else None
    else:
        seconds, bracket = hit.seconds, hit.resolution_seconds
    if seconds is None:
        return "not reached"
    within = f" ±{bracket / 2:.2f}" if bracket else ""
    return f"{hit.step:.1f} / {seconds:.2f}{within} s"


def _accuracy(s: ActivationSummary) -> str:
    e = s.over_seeds.get("test accuracy")
    if e is None or e.n < 2:
        return pct(s.test_accuracy)
    return f"{100 * e.mean:.2f}% ± {100 * (e.high - e.mean):.2f} (n={e.n})"


def seed_rows(report: ReportRecord) -> list[dict[str, str]]:
    """Per activation, mean ± 95% CI over seeds (several seeds only)."""

    def cell(s: ActivationSummary, key: str, scale: float = 1.0, fmt: str = ".2f") -> str:
        e = s.over_seeds.get(key)
        if e is None or e.n == 0:
            return f"never (0/{len(s.seeds)})"
        half = "" if math.isnan(e.high) else f" ± {scale * (e.high - e.mean):{fmt}}"
        reached = f" ({e.n}/{len(s.seeds)})" if e.n < len(s.seeds) else ""
        return f"{scale * e.mean:{fmt}}{half}{reached}"

    return [
        {
            "activation": s.name,
            "seeds": str(len(s.seeds)),
            "test acc %": cell(s, "test accuracy", 100),
            "test loss": cell(s, "test loss", 1, ".4f"),
            **(
                {
                    f"s {clock(report)} → {target_label(report)}": cell(
                        s, seconds_what(report.target_accuracy, report.train_stack), 1, ".1f"
                    ),
                    f"steps → {target_label(report)}": cell(s, f"steps to {target_label(report)}", 1, ".0f"),
                }
                if report.target_accuracy
                else {}
            ),
        }
        for s in trained(report)
        if len(s.seeds) > 1
    ]


def evidence_rows(report: ReportRecord) -> list[dict[str, str]]:
    """Every paired comparison with the baseline that has at least two paired seeds (see ``evidence_note``)."""
    rows = []
    for s in trained(report):
        for c in (c for c in s.vs_baseline if c.n >= 2):
            scale = 100 if "accuracy" in c.what else 1
            unit = " pp" if "accuracy" in c.what else ""
            rows.append(
                {
                    "activation": s.name,
                    f"vs {report.baseline}": c.what,
                    "seeds": str(c.n),
                    "mean Δ": "—" if math.isnan(c.mean_difference) else f"{scale * c.mean_difference:+.3f}{unit}",
                    "95% CI": "—" if math.isnan(c.low) else f"[{scale * c.low:+.3f}, {scale * c.high:+.3f}]",
                    "p": p_cell(c.p_value),
                    "d_z": "—" if math.isnan(c.effect_size) else f"{c.effect_size:+.2f}",
                    "resolution": _resolution(c),
                    "verdict": _significance(c),
                    "reached": c.reached,
                }
            )
    return rows


def evidence_note(report: ReportRecord) -> str:
    """One line for the paired comparisons that cannot say anything (fewer than two paired seeds)."""
    thin = [c for s in trained(report) for c in s.vs_baseline if c.n < 2]
    if not thin:
        return ""
    return (
        f"{len(thin)} paired comparison(s) with fewer than two paired seeds are not shown: they cannot tell a "
        "difference from chance (train with --seeds N)."
    )


def _resolution(c: PairedComparison) -> str:
    return "—" if c.resolution is None else f"{c.resolution:.3g}"


def _significance(c: PairedComparison) -> str:
    if c.n < 2:
        return "too few seeds"
    if not c.resolved:
        return "below resolution"
    if not c.significant:
        return "within noise"
    better = (c.mean_difference > 0) == c.higher_is_better
    return "significantly " + ("better" if better else "worse")


def convergence_rows(report: ReportRecord) -> list[dict[str, str]]:
    on = clock(report)
    return [
        {
            "activation": s.name,
            "init": s.init,
            "test acc": _accuracy(s),
            "ONNX acc": pct(s.onnx_test_accuracy),
            f"steps / s {on} → {target_label(report)}": _seconds_to(report, s, report.target_accuracy)
            if report.target_accuracy
            else "—",
            **({f"steps / s {on} → 98%": _seconds_to(report, s, 0.98)} if (report.target_accuracy or 0) < 0.98 else {}),
            "lr": "—" if s.lr is None else f"{s.lr:g}",
            "recipe": s.recipe or "—",
            "train img/s": num(s.images_per_second) + (" (contended)" if s.contended_runs else ""),
            "mean act per layer": _per_layer(s.mean_activation, "+.2f"),
            "dead % per layer": _per_layer([100 * d for d in s.dead_fraction], ".0f"),
            "data": f"{s.dataset}, {s.epochs} ep, {s.precision}",
        }
        for s in trained(report)
    ]


# --- learning-rate sweeps ---------------------------------------------------------------------------


def contention_note(report: ReportRecord) -> str:
    """A warning when training times were measured on cores shared with other trainings, or by a trainer that
    ran other speed-ups than the baseline's (their seconds on the runs' own clock are then not comparable)."""
    notes = []
    runs = sum(s.contended_runs for s in trained(report))
    if runs:
        notes.append(
            f"{runs} training run(s) shared their node's cores with other trainings (Ray tasks packed with "
            "--cpus-per-task, or on a node larger than the smallest): their seconds and img/s are not comparable "
            "with the others'. Retrain them with whole-node tasks (--cpus-per-task 0 --force) before reading the "
            "race on the runs' clock."
        )
    differ = [f"{s.name}: {s.trainer_differs}" for s in trained(report) if s.trainer_differs]
    if differ:
        priced = f" (the verdicts price seconds on {report.train_stack})" if report.train_stack else ""
        notes.append(
            "Trained with other speed-ups than the baseline — " + "; ".join(differ) + ": their seconds on the "
            f"runs' own clock are not comparable with the baseline's; their steps are{priced}."
        )
    return " ".join(notes)


def lr_rows(report: ReportRecord) -> list[dict[str, str]]:
    """Per activation, each rate's final validation accuracy over seeds (and seconds to the target); the
    chosen rate marked ✓; "—" where no run finished at that rate (every seed diverged)."""
    study = report.lr_study
    if study is None:
        return []
    cells = {(c.activation, c.lr): c for c in study.cells}
    names = list(dict.fromkeys(c.activation for c in study.cells))
    return [
        {"activation": name} | {f"lr {lr:g}": _lr_cell(cells.get((name, lr)), report) for lr in study.lrs}
        for name in names
    ]


def _lr_cell(c: LrCell | None, report: ReportRecord) -> str:
    if c is None:
        return "—"
    acc = c.val_accuracy
    spread = "" if math.isnan(acc.high) else f" ± {100 * (acc.high - acc.mean):.2f}"
    time = c.seconds_to_target  # seconds on the verdicts' stack, or steps where none was timed
    if report.target_accuracy is None:
        reach = "no target"
    elif report.train_stack and c.activation not in step_seconds(report):
        reach = f"no step time on {report.train_stack}"
    elif not time.n:
        reach = "not reached"
    else:
        value = f"{time.mean:.1f} s" if report.train_stack else f"{time.mean:.0f} steps"
        reach = value + (f" ({time.n}/{c.seeds})" if time.n < c.seeds else "")
    return f"{'✓ ' if c.chosen else ''}{100 * acc.mean:.2f}%{spread} · {reach}"


def lr_time_words(report: ReportRecord) -> str:
    """What the learning-rate tables' times are, in words."""
    if report.train_stack:
        return f"training seconds on {report.train_stack} (steps × its step time, as the verdicts are priced)"
    return "training steps (no step time was measured to price them in seconds)"


def lr_note(report: ReportRecord) -> str:
    study = report.lr_study
    if study is None:
        return ""
    return (
        f"Final validation accuracy, mean ± 95% CI over seeds · mean {lr_time_words(report)} to "
        f"{target_label(report)} (seeds that reached it); —: no run finished at that rate. ✓ the rate each "
        "activation is judged at: "
        f"{study.rule}. "
        f"Network: {report.network_words}."
    )


def shared_lr_rows(report: ReportRecord) -> list[dict[str, str]]:
    """Every activation at the one shared rate, against the baseline at that rate, paired by seed."""
    study = report.lr_study
    if study is None:
        return []
    level = f"{100 * study.shared_target:.0f}%" if study.shared_target else "target"
    unit, fmt = ("s", ".2f") if report.train_stack else ("steps", ".1f")
    on = f" on {report.train_stack}" if report.train_stack else ""
    rows = []
    for s in study.at_shared:
        c = s.vs_baseline
        e = s.seconds_to_target
        rows.append(
            {
                "activation": s.activation,
                f"{unit}{on} → {level} at lr {study.shared_lr:g}": f"{e.mean:{fmt}}"
                if e.n
                else ("not reached" if study.shared_target else "no target"),
                f"Δ vs {report.baseline} [95% CI]": "—"
                if c is None or math.isnan(c.low)
                else f"{c.mean_difference:+{fmt}} [{c.low:+{fmt}}, {c.high:+{fmt}}]",
                "p": "—" if c is None else p_cell(c.p_value),
                f"resolution ({unit})": "—" if c is None else _resolution(c),
                "verdict": "baseline" if s.activation == report.baseline else "—" if c is None else _significance(c),
            }
        )
    return rows
