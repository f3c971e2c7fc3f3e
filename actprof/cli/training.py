"""``actprof train-export`` and ``actprof run``: parse, hand the configs to the API, print what it returns."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from actprof.cli import build
from actprof.cli.app import app
from actprof.cli.console import RichReporter, console
from actprof.cli.options import (
    EXPORT,
    RUN,
    TRAIN,
    ActOpt,
    AlphaDropoutOpt,
    BaselineOpt,
    BatchNormOpt,
    BatchSizeOpt,
    BatchSizesOpt,
    CpusPerTaskOpt,
    DataDirOpt,
    DatasetOpt,
    DeviceOpt,
    DropoutOpt,
    EpochsOpt,
    ExecutorOpt,
    ForceOpt,
    HighlightOpt,
    InferencePrecisionOpt,
    InitOpt,
    LrOpt,
    MinTimeOpt,
    ModelOpt,
    ModelsOpt,
    MomentumOpt,
    NesterovOpt,
    OptimizerOpt,
    OutOpt,
    ProfileOnOpt,
    ProviderOpt,
    RayAddressOpt,
    RewriteOpt,
    SeedOpt,
    SeedsOpt,
    StacksOpt,
    StandardizeOpt,
    ThreadsOpt,
    TrainStackOpt,
    listed,
)
from actprof.settings.training import DEFAULT_STACKS, TRAIN_STACKS


@app.command("train-export")
def train_export(
    act: ActOpt = "relu,elu",
    alpha: Annotated[
        float | None, typer.Option(help="The activation's parameter (ELU/CELU alpha, LeakyReLU slope…).")
    ] = None,
    init: InitOpt = None,
    epochs: EpochsOpt = TRAIN.epochs,
    batch_size: BatchSizeOpt = TRAIN.batch_size,
    lr: LrOpt = f"{TRAIN.lr:g}",
    optimizer: OptimizerOpt = TRAIN.optimizer,
    momentum: MomentumOpt = TRAIN.momentum,
    nesterov: NesterovOpt = TRAIN.nesterov,
    seed: SeedOpt = str(TRAIN.seed),
    seeds: SeedsOpt = None,
    model: ModelOpt = "seed",
    batch_norm: BatchNormOpt = False,
    standardize: StandardizeOpt = False,
    dropout: DropoutOpt = None,
    alpha_dropout: AlphaDropoutOpt = None,
    force: ForceOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    cpus_per_task: CpusPerTaskOpt = 0,
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16 (training only).")] = TRAIN.precision,
    val_every: Annotated[
        int, typer.Option("--val-every", help="Steps between validation points (0: auto).")
    ] = TRAIN.val_every,
    threads: ThreadsOpt = TRAIN.threads,
    device: DeviceOpt = TRAIN.device,
    data_dir: DataDirOpt = None,
    dataset: DatasetOpt = "auto",
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 20 keeps GELU one node).")] = EXPORT.opset,
    exporter: Annotated[str, typer.Option(help="dynamo | torchscript.")] = EXPORT.exporter,
    rewrite: RewriteOpt = EXPORT.rewrite,
    out: OutOpt = EXPORT.out,
) -> None:
    """Train each activation on MNIST (every learning rate × seed), export to ONNX and prove parity with PyTorch.

    Finished runs are kept in <out>/runs/: the same command again resumes an interrupted sweep."""
    from actprof import api

    acts = _activations(act)
    plan = build.sweep(lr, seed, seeds, force=force)
    recipe = build.recipe(model, dropout, alpha_dropout, alpha, init, batch_norm=batch_norm, standardize=standardize)
    placement = build.placement(executor, ray_address, cpus_per_task, device)
    train = api.TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=plan.lrs[0],
        optimizer=optimizer.strip().lower(),
        momentum=momentum,
        nesterov=nesterov,
        seed=plan.seeds[0],
        precision=precision,
        val_every=val_every,
        threads=threads,
        device=device,
    )
    export = api.ExportOptions(out=out, opset=opset, exporter=exporter, rewrite=rewrite)
    trained = api.train_export(
        acts,
        train=train,
        sweep=plan,
        recipe=recipe,
        export=export,
        data=api.DataSource(data_dir, dataset),
        placement=placement,
        reporter=RichReporter(),
    )
    console().print(f"wrote {len(trained.records)} model(s) to {out}/")
    trained.check()


@app.command("run")
def run_command(
    act: ActOpt = "all",
    epochs: EpochsOpt = TRAIN.epochs,
    provider: ProviderOpt = listed(RUN.providers),
    batch_sizes: BatchSizesOpt = listed(RUN.batch_sizes),
    min_time: MinTimeOpt = RUN.min_time,
    seed: SeedOpt = str(TRAIN.seed),
    seeds: SeedsOpt = None,
    lr: LrOpt = f"{TRAIN.lr:g}",
    optimizer: OptimizerOpt = TRAIN.optimizer,
    momentum: MomentumOpt = TRAIN.momentum,
    nesterov: NesterovOpt = TRAIN.nesterov,
    batch_size: BatchSizeOpt = TRAIN.batch_size,
    model: ModelOpt = "seed",
    batch_norm: BatchNormOpt = False,
    standardize: StandardizeOpt = False,
    init: InitOpt = None,
    dropout: DropoutOpt = None,
    alpha_dropout: AlphaDropoutOpt = None,
    force: ForceOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    cpus_per_task: CpusPerTaskOpt = 0,
    profile_on: ProfileOnOpt = None,
    device: DeviceOpt = TRAIN.device,
    data_dir: DataDirOpt = None,
    dataset: DatasetOpt = "auto",
    baseline: BaselineOpt = "relu",
    rewrite: Annotated[str, typer.Option(help="none | pool-first (monotonic activations get both).")] = EXPORT.rewrite,
    precision: InferencePrecisionOpt = listed(RUN.precisions),
    train_stack: TrainStackOpt = "eager",
    stacks: StacksOpt = listed(DEFAULT_STACKS),
    highlight: HighlightOpt = None,
    models: ModelsOpt = EXPORT.out,
    out: OutOpt = Path("reports"),
) -> None:
    """train-export → the training step per stack → profile → report in one go (offline: the MNIST sample)."""
    from actprof import api
    from actprof.report.terminal import print_report
    from actprof.settings.parse import parse_choices, parse_one

    plan = build.sweep(lr, seed, seeds, force=force)
    recipe = build.recipe(model, dropout, alpha_dropout, init=init, batch_norm=batch_norm, standardize=standardize)
    placement = build.placement(executor, ray_address, cpus_per_task, device, profile_on=profile_on)
    settings = build.profile_settings(
        provider=provider, batch_sizes=batch_sizes, threads=RUN.threads, min_time=min_time, min_runs=RUN.min_runs,
        precision=precision,
    )  # fmt: skip
    result = api.run(
        _activations(act),
        train=api.TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            seed=plan.seeds[0],
            lr=plan.lrs[0],
            optimizer=optimizer.strip().lower(),
            momentum=momentum,
            nesterov=nesterov,
            device=device,
        ),
        sweep=plan,
        recipe=recipe,
        export=api.ExportOptions(out=models, rewrite=rewrite),
        settings=settings,
        data=api.DataSource(data_dir, dataset),
        placement=placement,
        remote=build.remote_profile(profile_on, ray_address if profile_on else None),
        baseline=baseline,
        out=out,
        highlight=_highlight(highlight),
        skip_unbound=build.providers(provider)[1],
        train_stack=parse_one(train_stack, TRAIN_STACKS, "--train-stack"),
        stacks=parse_choices(stacks, TRAIN_STACKS, "--stacks"),
        reporter=RichReporter(),
    )
    stages = result.stages
    total = f"; total {sum(stages.values()):.1f} s"
    console().print("stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()) + total)
    console().print("wrote " + ", ".join(str(p) for p in result.report.written))
    report = result.report
    print_report(report.record, report.profile, console=console(), microbench=report.microbench)
    result.trained.check()  # the report covers what finished; the exit code says what did not


def _activations(spec: str):
    from actprof import activations

    return activations.parse_list(spec)


def _highlight(spec: str | None) -> list[str] | None:
    return [a.name for a in _activations(spec)] if spec else None
