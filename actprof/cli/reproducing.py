"""``actprof reproduce``: the activation literature's MNIST experiments, run and put beside their numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from actprof.cli import build
from actprof.cli.app import app
from actprof.cli.console import RichReporter, console
from actprof.cli.options import DataDirOpt, DatasetOpt, ForceOpt, SeedOpt
from actprof.errors import UsageError


@app.command("reproduce")
def reproduce_command(
    name: Annotated[str | None, typer.Argument(help="The experiment (actprof reproduce --list names them).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the experiments, their sources and cost.")] = False,
    seed: SeedOpt = "0",
    seeds: Annotated[int | None, typer.Option("--seeds", help="Seeds per training (default 3).")] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Override the published epochs (the report says it is shortened).")
    ] = None,
    data_dir: DataDirOpt = None,
    dataset: DatasetOpt = "auto",
    models: Annotated[Path, typer.Option("--models", help="Where the trainings are kept (resumable).")] = Path(
        "models/reproduce"
    ),
    force: ForceOpt = False,
    out: Annotated[Path, typer.Option("--out", help="Reports go to OUT/NAME/.")] = Path("reports/reproduce"),
) -> None:
    """Run a published MNIST experiment (the SELU tutorial, Mish's depth grid, the Keras blog) over seeds and
    compare with its published numbers."""
    from actprof import api
    from actprof.report.reproduction import listing, print_reproduction
    from actprof.settings.literature import EXPERIMENTS

    if list_:
        console().print(listing(list(EXPERIMENTS.values())))
        return
    if name is None:
        raise UsageError(f"name an experiment: {', '.join(EXPERIMENTS)} (actprof reproduce --list)")
    plan = build.sweep("1", seed, seeds if seeds is not None or "," in seed else 3, force=force)
    result = api.reproduce(
        name.strip().lower(),
        seeds=plan.seeds,
        epochs=epochs,
        data=api.DataSource(data_dir, dataset),
        models=models,
        out=out,
        force=force,
        reporter=RichReporter(),
    )
    print_reproduction(result.record, console())
    console().print("wrote " + ", ".join(str(p) for p in result.written))
