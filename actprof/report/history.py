"""The history read for a person: a table of the runs, a table of one activation's ratio over them, and the
figure of that ratio over runs (one line per deployment and batch, bars spanning each 95% CI)."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from actprof.report.format import interval, pct
from actprof.report.plots import _figure, _series_style
from actprof.report.terminal import _rich_table

if TYPE_CHECKING:
    from rich.console import Console

    from actprof.schema.history import History, RatioPoint, Run

FIGURE_FORMATS = ("png", "svg")


def cell(point: RatioPoint) -> str:
    """A deployment and batch in a few words: "cpu fp32 b1" (the timing mode named where it is not compute)."""
    mode = "" if point.mode == "compute" else f" {point.mode}"
    return f"{point.provider} {point.precision} b{point.batch}{mode}"


def when(run: Run) -> str:
    """The report's own time to the minute (when the results were made, not when they were added)."""
    return run.created[:16].replace("T", " ")


def runtimes(run: Run, *, torch: bool = True) -> str:
    """The inference runtimes' versions (and PyTorch's, where ``torch``) in one short line."""
    named = (("ORT", run.onnxruntime), ("OV", run.openvino), ("torch", run.torch if torch else None))
    return " · ".join(f"{name} {version}" for name, version in named if version) or "—"


def machine(run: Run) -> str:
    return " ".join(part for part in (run.cpu_model, f"×{run.cpu_count}", run.arch) if part)


def _run_columns(run: Run) -> dict[str, str]:
    return {
        "run": str(run.id),
        "date (UTC)": when(run),
        "label": run.label or "—",
        "runtimes": runtimes(run),
        "commit": (run.git_commit or "—")[:8],
        "machine": machine(run),
    }


def run_rows(history: History) -> list[dict[str, str]]:
    """One row per run: when, which software, which machine, how many activations it holds."""
    counts: dict[int, int] = {}
    for a in history.accuracy:
        counts[a.run_id] = counts.get(a.run_id, 0) + 1
    return [
        {**_run_columns(r), "actprof": r.actprof, "activations": str(counts.get(r.id, 0)), "source": r.source}
        for r in history.runs
    ]


def ratio_rows(history: History, activation: str) -> list[dict[str, str]]:
    """One row per run: the run, the activation's test accuracy, and its ratio to the baseline per deployment
    and batch ("—" where that run did not measure it)."""
    cells = list(dict.fromkeys(cell(p) for p in _sorted(history.ratios)))
    rows = []
    for run in history.runs:
        points = {cell(p): p.ratio for p in history.ratios if p.run_id == run.id}
        accuracy = next((a.test_accuracy for a in history.accuracy if a.run_id == run.id), None)
        if not points and accuracy is None:
            continue
        row = {**_run_columns(run), "vs": run.baseline, "test acc": _accuracy(accuracy)}
        rows.append(row | {c: interval(points.get(c), ".2f", "×") for c in cells})
    return rows


def _accuracy(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else pct(value)


def _sorted(points: list[RatioPoint]) -> list[RatioPoint]:
    return sorted(points, key=lambda p: (p.provider, p.precision, p.batch, p.mode))


def print_history(history: History, activation: str | None, *, console: Console) -> None:
    """The runs (no ``activation``), or the activation's ratio to the baseline in every run that has it."""
    if activation is None:
        caption = "pick an activation with --act NAME for its ratio to the baseline over these runs"
        console.print(_rich_table(f"History: {history.path}", run_rows(history), caption))
        return
    caption = (
        f"{activation}'s latency ÷ the baseline's (vs), same deployment and batch, with its 95% CI; "
        "date: when the report was made; cells: provider precision b<batch>"
    )
    console.print(_rich_table(f"{activation} over time: {history.path}", ratio_rows(history, activation), caption))


def ratio_figure(history: History, activation: str, *, fmt: str = "png") -> bytes:
    """The activation's ratio to the baseline over runs (oldest report left), one line per deployment and
    batch, bars spanning the 95% CI; x labelled by each run's date and runtime versions. A line above 1 is
    slower than the baseline; a line that moves is the runtime (or the machine) changing under it."""
    order = {run.id: i for i, run in enumerate(history.runs)}
    plt, fig, ax = _figure(width=max(7.5, 1.3 * len(order) + 3))
    by_cell: dict[str, list[RatioPoint]] = {}
    for p in _sorted(history.ratios):
        by_cell.setdefault(cell(p), []).append(p)
    for i, (name, points) in enumerate(by_cell.items()):
        points.sort(key=lambda p: order[p.run_id])
        xs = [order[p.run_id] for p in points]
        ys = [p.ratio.value for p in points]
        errors = [[_below(p) for p in points], [_above(p) for p in points]]
        ax.errorbar(xs, ys, yerr=errors, capsize=3, label=name, **_series_style(i))
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(history.runs)), [_tick(run) for run in history.runs], fontsize="small")
    baselines = ", ".join(sorted({p.baseline for p in history.ratios})) or "the baseline"
    ax.set_ylabel(f"{activation} latency ÷ {baselines} (95% CI)")
    ax.set_xlabel("run: the report's date, runtime versions")
    ax.grid(alpha=0.3)
    if by_cell:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside: never over a point
    else:
        ax.text(0.5, 0.5, f"no latency ratio of {activation} in these runs", transform=ax.transAxes, ha="center")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt)
    plt.close(fig)
    return buffer.getvalue()


def _tick(run: Run) -> str:
    lines = [when(run)[:10], *([run.label] if run.label else []), runtimes(run, torch=False).replace(" · ", "\n")]
    return "\n".join(lines)


def _below(p: RatioPoint) -> float:
    return 0.0 if math.isnan(p.ratio.low) else max(0.0, p.ratio.value - p.ratio.low)


def _above(p: RatioPoint) -> float:
    return 0.0 if math.isnan(p.ratio.high) else max(0.0, p.ratio.high - p.ratio.value)
