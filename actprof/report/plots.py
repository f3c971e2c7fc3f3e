"""The report's figures as PNG bytes (matplotlib, headless): embedded in the HTML as data URIs."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from actprof.report.step_tables import seconds_to_target
from actprof.schema.profiling import ProfileRecord
from actprof.schema.reports import ReportRecord
from actprof.schema.training import ModelRecord


def _figure(width: float = 7.5, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=110, layout="constrained")
    return plt, fig, ax


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def accuracy_curves(
    models: Sequence[ModelRecord],
    *,
    x: str,
    baseline: str | None = None,
    highlight: Sequence[str] | None = None,
    step_seconds: dict[str, float] | None = None,
    stack: str = "",
) -> bytes:
    """Validation accuracy vs training steps (``x="steps"``) or seconds (``x="seconds"``).

    Seconds are each activation's steps × its step time on ``stack`` where ``step_seconds`` gives it (the
    stack users train with, timed side by side), else the runs' own clock. The baseline in black and the
    ``highlight``ed activations in colour, with seed bands; every other activation a thin gray line (all in
    colour when ``highlight`` is None). Exact rewrites share their original's training and are not drawn."""
    priced = x == "seconds" and bool(step_seconds)

    def xs(m: ModelRecord, points) -> list[float]:
        if x == "steps":
            return [p.step for p in points]
        if priced:
            return [p.step * step_seconds[m.name] for p in points]
        return [p.train_seconds for p in points]

    plt, fig, ax = _figure()
    trained = [m for m in models if m.rewrite is None and (not priced or m.name in step_seconds)]
    shown = [m for m in trained if highlight is None or m.name in highlight or m.name == baseline]
    for m in (m for m in trained if m not in shown):
        points = m.train.validation
        ax.plot(xs(m, points), [100 * p.val_accuracy for p in points], color="0.75", linewidth=0.8, zorder=1)
    if len(shown) < len(trained):
        ax.plot([], [], color="0.75", linewidth=0.8, label="others")
    for i, m in enumerate(shown):
        points = m.train.validation
        style = {"color": "black", "linewidth": 2.0, "marker": "."} if m.name == baseline else _series_style(i)
        (line,) = ax.plot(xs(m, points), [100 * p.val_accuracy for p in points], label=m.name, zorder=3, **style)
        if len(m.runs) > 1:  # the band spans every seed's curve (validation points share their steps)
            curves = [[100 * p.val_accuracy for p in run.validation] for run in m.runs]
            if len({len(c) for c in curves}) == 1:
                band_x = [sum(v) / len(v) for v in zip(*[xs(m, run.validation) for run in m.runs], strict=True)]
                lows = [min(v) for v in zip(*curves, strict=True)]
                highs = [max(v) for v in zip(*curves, strict=True)]
                ax.fill_between(band_x, lows, highs, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel(_x_label(x, stack if priced else ""))
    ax.set_ylabel("validation accuracy (%)")
    lows = [100 * p.val_accuracy for m in shown for p in m.train.validation]
    if lows:  # from 80% (where the CNNs' curves race), lower where a network ends below it (MLPs, small nets)
        floor = max(0.0, min(80.0, min(100 * m.train.validation[-1].val_accuracy for m in shown) - 5))
        ax.set_ylim(max(min(lows) - 1, floor), 100)
    ax.grid(alpha=0.3)
    ax.legend(ncol=4, fontsize="small")
    return _png(plt, fig)


def _x_label(x: str, stack: str) -> str:
    if x == "steps":
        return "training steps"
    if stack:
        return f"training seconds on {stack} (steps × its measured step time)"
    return "training seconds (validation excluded)"


def lr_sensitivity(report: ReportRecord) -> bytes:
    """Final validation accuracy against the learning rate, one line per activation (mean over seeds, bars
    spanning the 95% CI; the chosen rate ringed). Flat lines: the activation tolerates the rate."""
    plt, fig, ax = _figure()
    study = report.lr_study
    names = list(dict.fromkeys(c.activation for c in study.cells))
    for i, name in enumerate(names):
        cells = sorted((c for c in study.cells if c.activation == name), key=lambda c: c.lr)
        means = [100 * c.val_accuracy.mean for c in cells]
        errors = [
            [
                0.0 if math.isnan(c.val_accuracy.low) else 100 * (c.val_accuracy.mean - c.val_accuracy.low)
                for c in cells
            ],
            [
                0.0 if math.isnan(c.val_accuracy.high) else 100 * (c.val_accuracy.high - c.val_accuracy.mean)
                for c in cells
            ],
        ]
        style = {"color": "black", "linewidth": 2.0, "marker": "o"} if name == report.baseline else _series_style(i)
        line = ax.errorbar([c.lr for c in cells], means, yerr=errors, capsize=3, label=name, **style)
        chosen = [(c.lr, 100 * c.val_accuracy.mean) for c in cells if c.chosen]
        if chosen:
            ax.scatter(*zip(*chosen, strict=True), s=140, facecolors="none", edgecolors=line[0].get_color(), zorder=4)
    ax.set_xscale("log")
    ax.minorticks_off()  # only the rates swept are labelled
    ax.set_xticks(study.lrs, [f"{lr:g}" for lr in study.lrs])
    ax.set_xlabel("learning rate (Adam)")
    ax.set_ylabel("final validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(ncol=4, fontsize="small")
    return _png(plt, fig)


def _series_style(index: int) -> dict[str, str]:
    """Ten colours, then the same colours dashed and dotted: 14 activations stay distinguishable."""
    return {"color": f"C{index % 10}", "linestyle": ("-", "--", ":")[index // 10 % 3], "marker": "."}


def latency_bars(profile: ProfileRecord, *, provider: str, batch: int, precision: str = "fp32") -> bytes:
    """p50 latency per activation; error bars: the 95% CI of its ratio to the baseline, mapped onto ms."""
    rows = [
        r
        for r in profile.latency
        if (r.provider, r.precision, r.batch) == (provider, precision, batch)
        and r.variant == "as-trained"
        and r.mode == "compute"
    ]
    rows.sort(key=lambda r: r.stats.p50_ms)
    base = next((r for r in rows if r.model == profile.baseline), None)
    plt, fig, ax = _figure(height=0.35 * len(rows) + 1.2)
    values = [r.stats.p50_ms for r in rows]
    errors = [[0.0] * len(rows), [0.0] * len(rows)]
    for i, r in enumerate(rows):
        if base and r.vs_baseline and not math.isnan(r.vs_baseline.low):
            errors[0][i] = max(0.0, r.stats.p50_ms - base.stats.p50_ms * r.vs_baseline.low)
            errors[1][i] = max(0.0, base.stats.p50_ms * r.vs_baseline.high - r.stats.p50_ms)
    ax.barh([r.model for r in rows], values, xerr=errors, capsize=3, color="#4c72b0")
    ax.set_xlabel(
        f"p50 latency (ms), {provider} {precision}, batch {batch}; error bars: 95% CI of the ratio to the baseline"
    )
    ax.grid(axis="x", alpha=0.3)
    return _png(plt, fig)


def pareto(report: ReportRecord, *, provider: str, batch: int, precision: str = "fp32") -> bytes:
    """Inference latency vs training seconds to the target accuracy, with the Pareto front."""
    points = []
    for s in report.activations:
        t = seconds_to_target(report, s)
        lat = next(
            (r.p50_ms for r in s.latency if (r.provider, r.precision, r.batch) == (provider, precision, batch)), None
        )
        if t is not None and lat is not None:
            points.append((t, lat, s.name))
    plt, fig, ax = _figure()
    for t, lat, name in points:
        ax.scatter(t, lat, color="#4c72b0")
        ax.annotate(name, (t, lat), textcoords="offset points", xytext=(4, 3), fontsize="small")
    front = pareto_front([(t, lat) for t, lat, _ in points])
    if front:
        ax.plot(*zip(*front, strict=True), color="#dd8452", linestyle="--", label="Pareto front")
        ax.legend(fontsize="small")
    target = f"{100 * report.target_accuracy:.0f}%" if report.target_accuracy else "target"
    on = f" on {report.train_stack}" if report.train_stack else ""
    ax.set_xlabel(f"training seconds{on} to {target} validation accuracy")
    ax.set_ylabel(f"p50 latency (ms, log scale), {provider} {precision}, batch {batch}")
    if points:
        from matplotlib.ticker import FormatStrFormatter

        ax.set_yscale("log")  # one slow activation (Mish: 5x) would flatten every other point onto the axis
        for axis_format in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis_format(FormatStrFormatter("%.3g"))  # 0.064, not 6.4×10⁻²
    ax.grid(alpha=0.3, which="both")
    if not points:
        ax.text(0.5, 0.5, "no activation reached the target", transform=ax.transAxes, ha="center")
    return _png(plt, fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both axes (lower is better on both), sorted by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


def op_shares(profile: ProfileRecord, *, provider: str, batch: int, precision: str = "fp32", top: int = 6) -> bytes:
    """Per-op time per activation as stacked bars (µs per run), the largest op types named."""
    rows = [p for p in profile.op_profiles if (p.provider, p.precision, p.batch) == (provider, precision, batch)]
    totals: dict[str, float] = {}
    for p in rows:
        for o in p.ops:
            totals[o.op_type] = totals.get(o.op_type, 0.0) + o.us_per_run
    named = sorted(totals, key=lambda k: -totals[k])[:top]
    plt, fig, ax = _figure(height=0.35 * len(rows) + 1.5)
    left = [0.0] * len(rows)
    for op in [*named, "other"]:
        widths = [
            sum(o.us_per_run for o in p.ops if (o.op_type == op) or (op == "other" and o.op_type not in named))
            for p in rows
        ]
        ax.barh([p.model for p in rows], widths, left=left, label=op)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    clock = "host-side launch " if any(p.clock == "launch" for p in rows) else ""
    ax.set_xlabel(f"{clock}µs per run by op type ({provider} {precision}, batch {batch}, separate profiling session)")
    ax.legend(ncol=4, fontsize="small", loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _png(plt, fig)
