"""``actprof history add`` and ``actprof history show``: reports kept over time in a local SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from actprof.cli.app import app
from actprof.cli.console import console, say

history_app = typer.Typer(
    help="Keep reports over time in a local SQLite file, and follow an activation's ratio across runtime "
    "versions, commits and machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(history_app, name="history")

DEFAULT_DB = Path("reports/history.sqlite")
DbOpt = Annotated[Path, typer.Option("--db", help="The history file (SQLite; created by the first add).")]


@history_app.command("add")
def add_command(
    results: Annotated[Path, typer.Argument(help="A report directory or report.json (actprof report --out).")],
    db: DbOpt = DEFAULT_DB,
    label: Annotated[str | None, typer.Option(help="A name for this run, e.g. a branch or 'ORT 1.20 trial'.")] = None,
) -> None:
    """Add a report as one run: its runtime versions, actprof version, git commit, machine, and every
    activation's latency ratios and test accuracy. The same report twice is skipped."""
    from actprof import api
    from actprof.report.history import machine, runtimes

    added = api.history_add(db, results, label=label)
    run = added.run
    about = f"report of {run.created}, {runtimes(run)}, {machine(run)}, commit {(run.git_commit or '—')[:8]}"
    if added.added:
        say(f"added run {run.id} to {db}: {added.ratios} ratios, {added.accuracies} accuracies ({about})")
    else:
        say(f"already in {db} as run {run.id} (the same report: {about}); nothing added")


@history_app.command("show")
def show_command(
    db: DbOpt = DEFAULT_DB,
    act: Annotated[str | None, typer.Option("--act", help="The activation to follow (default: list the runs).")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider (as --provider names it).")] = None,
    precision: Annotated[str | None, typer.Option(help="Only this precision: fp32, fp16, bf16, int8.")] = None,
    batch: Annotated[int | None, typer.Option(help="Only this batch size.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Also draw the activation's ratio over runs to this .png or .svg file.")
    ] = None,
) -> None:
    """The runs in the history; with --act, that activation's ratio to the baseline (95% CI) in each run, per
    deployment and batch, and with --plot the same as a figure."""
    from actprof import api
    from actprof.report.history import print_history

    found = api.history_show(db, activation=act, provider=provider, precision=precision, batch=batch, plot=plot)
    print_history(found, act, console=console())
    if plot is not None:
        say(f"wrote {plot}")
