"""``actprof report``, ``actprof diff``, ``actprof optimize`` and ``actprof env``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from actprof.cli.app import app
from actprof.cli.console import RichReporter, console
from actprof.cli.options import BaselineOpt, HighlightOpt, ModelsOpt, OutOpt
from actprof.errors import InconclusiveChange, RegressionFound, UsageError

if TYPE_CHECKING:
    from actprof.analysis.gate import Change


@app.command("report")
def report_command(
    models: ModelsOpt = Path("models"),
    results: Annotated[Path, typer.Option("--results", help="Directory with profile.json (optional).")] = Path(
        "reports"
    ),
    baseline: BaselineOpt = "relu",
    target: Annotated[
        float | None, typer.Option(help="Target validation accuracy in % (default: highest the baseline reached).")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="Comma list of table, md, html, json, csv.")] = (
        "table,md,html,json,csv"
    ),
    highlight: HighlightOpt = None,
    train_stack: Annotated[
        str | None,
        typer.Option(
            "--train-stack",
            help="Price training seconds on this stack (eager, compile, actprof; default: eager where "
            "steps.json has it, else the runs' own clock).",
        ),
    ] = None,
    out: OutOpt = Path("reports"),
) -> None:
    """The trade-off: convergence, latency, per-op share, fusion, and a verdict with the break-even."""
    from actprof import activations, api
    from actprof.report.files import parse_formats
    from actprof.report.terminal import print_report

    formats = parse_formats(format)
    if target is not None and not 0 < target <= 100:
        raise UsageError(f"--target must be a validation accuracy in % (0-100], got {target}")
    shown = [a.name for a in activations.parse_list(highlight)] if highlight else None
    built = api.report(
        models,
        results,
        baseline=baseline,
        target=target / 100 if target else None,
        formats=[f for f in formats if f != "table"],
        out=out,
        highlight=shown,
        train_stack=train_stack.strip().lower() if train_stack else None,
        reporter=RichReporter(),
    )
    console().print("wrote " + ", ".join(str(p) for p in built.written))
    if "table" in formats:
        print_report(built.record, built.profile, console=console(), microbench=built.microbench)


@app.command("diff")
def diff_command(
    base: Annotated[Path, typer.Argument(help="Baseline results: a report directory or report.json.")],
    new: Annotated[Path, typer.Argument(help="New results: a report directory or report.json.")],
    threshold: Annotated[
        str,
        typer.Option(
            help="Allowed regression, e.g. 5% or 0.05: of a latency ratio to the baseline activation, and of "
            "BASE's test accuracy (5% of 98% is 4.9 points)."
        ),
    ] = "5%",
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Also fail (exit 3) on an inconclusive change: its 95% interval straddles --threshold, or is missing.",
        ),
    ] = False,
) -> None:
    """CI gate: each change with its 95% interval; exit 4 on a regression beyond --threshold (its whole
    interval), exit 3 with --strict when a change is inconclusive (1 stays actprof's own failure)."""
    from actprof import api
    from actprof.analysis.gate import CALLS, parse_threshold
    from actprof.report.terminal import print_diff

    limit = parse_threshold(threshold)
    result = api.diff(base, new, threshold=limit)
    print_diff(result, console=console())
    beyond = f"beyond {100 * limit:g}%"
    if result.regressions:
        raise RegressionFound(f"{len(result.regressions)} regression(s) {beyond}: {_named(result.regressions)}")
    unsure = result.inconclusive
    if unsure and strict:
        raise InconclusiveChange(
            f"{len(unsure)} change(s) inconclusive at {100 * limit:g}% (--strict): {_named(unsure)}; "
            "measure again, longer, to narrow their intervals"
        )
    if result.identical:
        return
    counts = ", ".join(f"{len(result.called(call))} {call}" for call in CALLS if result.called(call))
    advice = (
        f" The {len(unsure)} inconclusive cannot be told from the threshold (their 95% interval straddles it, or "
        "there is none): --strict would fail on them."
    )
    console().print(f"No regression {beyond}: {counts}.{advice if unsure else ''}", markup=False, highlight=False)


def _named(changes: list[Change], most: int = 3) -> str:
    """The first few changes by name, for a one-line error."""
    names = "; ".join(c.what for c in changes[:most])
    return names + (f"; and {len(changes) - most} more (see the table)" if len(changes) > most else "")


@app.command("optimize")
def optimize_command(
    model: Annotated[Path, typer.Argument(help="An exported model, e.g. models/elu.onnx.")],
    out: Annotated[Path | None, typer.Option(help="Where to write (default: <model>+pool-first.onnx).")] = None,
) -> None:
    """Exact pool-first rewrite: a monotonic activation moved after its MaxPool, parity-checked (≤ 1e-6)."""
    from actprof import api

    done = api.optimize(model, out)
    console().print(
        f"moved {done.moved} activation(s) after their MaxPool; max |Δlogit| {done.max_abs_diff:.1e} on "
        f"{done.images} real images; wrote {done.path}"
    )
    speed = done.speed
    if speed.high < 1:
        advice = "faster here: ship the rewrite"
    elif speed.low > 1:
        advice = "SLOWER here (the rewrite can break a fusion the runtime had): keep the original on this runtime"
    else:
        advice = "no faster here, within noise: either will do"
    console().print(
        f"ORT CPU, batch 1: the rewrite runs {speed.value:.2f}× the original's latency "
        f"[95% CI {speed.low:.2f}, {speed.high:.2f}] — {advice}; profile it on your deployment runtime to be sure",
        markup=False,
        highlight=False,
    )


@app.command("env")
def env_command() -> None:
    """Versions, CPU, and which ONNX Runtime providers are compiled in and actually bind here."""
    from actprof import runtimes
    from actprof.report.terminal import print_environment
    from actprof.schema import environment
    from actprof.settings.profile import PROVIDERS

    statuses = [runtimes.backend(p).status() for p in PROVIDERS]
    print_environment(environment.capture(), console=console(), providers=statuses, gpu=environment.gpu_info())
