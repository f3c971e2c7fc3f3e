"""The command line: it parses options and wires stages together; the stages do the work.

Heavy imports (torch, onnxruntime) happen inside commands so that ``actprof --help`` is instant.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from actprof.errors import EXIT_RUNTIME, EXIT_USAGE, ActprofError
from actprof.settings import parse_positive_floats

app = typer.Typer(
    help="Does a faster-converging activation pay for its test-time cost? "
    "Train on MNIST, export to ONNX, profile with ONNX Runtime, report the trade-off.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ActOpt = Annotated[str, typer.Option("--act", help="Activation name, comma list, or 'all'.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output directory.")]
ModelsOpt = Annotated[Path, typer.Option("--models", help="Directory with <act>.onnx + <act>.json.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="Threads (0: all cores).")]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Directory with the four MNIST IDX files (.gz or raw).")
]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="auto | full | sample.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="Where PyTorch trains: cpu | cuda.")]
ProviderOpt = Annotated[
    str, typer.Option("--provider", help="Comma list of cpu, cuda, openvino, or all (every provider that binds here).")
]
InferencePrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="Inference precisions, a comma list: fp32, int8 (cpu, openvino), bf16 (openvino), fp16 (cuda).",
    ),
]
BatchSizesOpt = Annotated[str, typer.Option("--batch-sizes", help="Comma list of batch sizes.")]
MinTimeOpt = Annotated[float, typer.Option("--min-time", help="Seconds of timed runs per target.")]
BaselineOpt = Annotated[str, typer.Option("--baseline", help="Activation every other one is judged against.")]
SeedOpt = Annotated[str, typer.Option("--seed", help="Seed, or a comma list: same init draw and data order for all.")]
SeedsOpt = Annotated[int | None, typer.Option("--seeds", help="Train each activation with N seeds (seed, seed+1, …).")]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="Training epochs.")]
LrOpt = Annotated[
    str,
    typer.Option(
        "--lr", help="Adam learning rate, or a comma list to sweep (each activation's best chosen on validation)."
    ),
]
ModelOpt = Annotated[str, typer.Option("--model", help="seed (the Keras CNN) | deep (6 conv, no batch norm).")]
DropoutOpt = Annotated[
    float | None, typer.Option("--dropout", help="Dropout rate after each pooling block (default 0.25).")
]
AlphaDropoutOpt = Annotated[
    float | None, typer.Option("--alpha-dropout", help="Alpha-dropout rate for SELU (default 0.05).")
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Retrain every run, even those already saved in <models>/runs/.")
]
ExecutorOpt = Annotated[
    str, typer.Option("--executor", help="local (here, one run after another) | ray (one Ray task per run).")
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="Ray cluster to join (host:port; default: RAY_ADDRESS or a new local one)."),
]
CpusPerTaskOpt = Annotated[
    int, typer.Option("--cpus-per-task", help="CPUs each Ray training task reserves (0: a whole node's).")
]
ProfileOnOpt = Annotated[
    str | None,
    typer.Option(
        "--profile-on",
        help="Profile on the Ray node offering this custom resource (ray start --resources '{\"NAME\": 1}').",
    ),
]
HighlightOpt = Annotated[
    str | None,
    typer.Option(
        "--highlight", help="Activations drawn in colour in the curves (default: the decision table's top 3)."
    ),
]


def _console():
    from rich.console import Console

    # Off a terminal (CI logs, pipes) rich would assume 80 columns and squeeze the tables unreadable.
    return Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def _say(message: str) -> None:
    _console().print(message, markup=False, highlight=False)


@app.command("train-export")
def train_export(
    act: ActOpt = "relu,elu",
    alpha: Annotated[
        float | None, typer.Option(help="The activation's parameter (ELU/CELU alpha, LeakyReLU slope…).")
    ] = None,
    init: Annotated[str | None, typer.Option(help="he | lecun | glorot | default (family default).")] = None,
    epochs: EpochsOpt = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size.")] = 250,
    lr: LrOpt = "1e-3",
    seed: SeedOpt = "0",
    seeds: SeedsOpt = None,
    model: ModelOpt = "seed",
    dropout: DropoutOpt = None,
    alpha_dropout: AlphaDropoutOpt = None,
    force: ForceOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    cpus_per_task: CpusPerTaskOpt = 0,
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16 (training only).")] = "auto",
    val_every: Annotated[int, typer.Option("--val-every", help="Steps between validation points (0: auto).")] = 0,
    threads: ThreadsOpt = 0,
    device: DeviceOpt = "cpu",
    data_dir: DataDirOpt = None,
    dataset: DatasetOpt = "auto",
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 20 keeps GELU one node).")] = 20,
    exporter: Annotated[str, typer.Option(help="dynamo | torchscript.")] = "dynamo",
    rewrite: Annotated[
        str, typer.Option(help="none | pool-first (also write <act>+pool-first.onnx: f after MaxPool, exact).")
    ] = "none",
    out: OutOpt = Path("models"),
) -> None:
    """Train each activation on MNIST (every learning rate × seed), export to ONNX and prove parity with PyTorch.

    Finished runs are kept in <out>/runs/: the same command again resumes an interrupted sweep."""
    from actprof import activations, export, pipeline, report
    from actprof.records import TrainConfig

    acts = activations.parse_list(act)
    if alpha is not None and any(a.param is None for a in acts):
        bad = ", ".join(a.name for a in acts if a.param is None)
        raise _usage(f"--alpha does not apply to {bad}; choose activations that take a parameter")
    if init is not None:
        activations.check_init(init)
    seed_list = _seeds(seed, seeds)
    lrs = parse_positive_floats(lr, "--lr")
    recipe = _recipe(acts, model, dropout, alpha_dropout)
    placement = _placement(executor, ray_address, cpus_per_task, device)
    train_config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lrs[0],
        seed=seed_list[0],
        precision=precision,
        val_every=val_every,
        threads=threads,
        device=device,
    )
    if placement is None:  # a Ray task asks the cluster for its GPU instead
        _check_device(train_config.device)
    export.check_options(opset=opset, exporter=exporter)
    _say_skipped(export.check_rewrite(rewrite, acts), rewrite)
    console = _console()
    records, failures = pipeline.train_export_all(
        acts,
        train_config,
        pipeline.ExportOptions(out=out, opset=opset, exporter=exporter, rewrite=rewrite),
        console=console,
        alpha=alpha,
        init=init,
        data_dir=data_dir,
        dataset=dataset,
        extra_seeds=seed_list[1:],
        lrs=lrs,
        recipe=recipe,
        force=force,
        placement=placement,
    )
    report.print_training(records, console=console)
    console.print(f"wrote {len(records)} model(s) to {out}/")
    pipeline.raise_failures(failures, out)


def _placement(executor: str, address: str | None, cpus_per_task: int, device: str, *, profile_on: str | None = None):
    """None for the local executor; where Ray tasks go otherwise (Ray's presence checked here).
    ``--ray-address`` also serves ``--profile-on`` with local training."""
    from actprof import cluster
    from actprof.settings import parse_choices

    kind = parse_choices(executor, cluster.EXECUTORS, "--executor")
    if len(kind) > 1:
        raise _usage("--executor takes one of: local, ray")
    if cpus_per_task < 0:
        raise _usage(f"--cpus-per-task must be 0 (a whole node) or more, got {cpus_per_task}")
    if kind == ["local"]:
        if (address and not profile_on) or cpus_per_task:
            raise _usage("--ray-address and --cpus-per-task apply to --executor ray (or --profile-on)")
        return None
    placement = cluster.Placement(address=address, cpus_per_task=cpus_per_task, gpu=device == "cuda")
    cluster.connect(address)  # an unreachable cluster or an impossible task is refused before any data loads
    cluster.check_feasible(cluster.cpus_per_task(placement), gpu=placement.gpu)
    return placement


def _remote_profile(resource: str | None, address: str | None, threads: int):
    """Where the profile stage runs: here (None), or on the Ray node offering ``resource``."""
    if resource is None:
        if address:
            raise _usage("--ray-address applies to --profile-on here; add --profile-on RESOURCE")
        return None
    from actprof import cluster
    from actprof.pipeline import RemoteProfile

    if not resource.strip():
        raise _usage("--profile-on needs the name of a custom Ray resource, e.g. --profile-on profiler")
    cluster.connect(address)
    cluster.profiling_node_cpus(resource.strip())  # refused now, not after the training
    return RemoteProfile(resource=resource.strip(), address=address, threads=threads)


def _recipe(acts, model: str, dropout: float | None, alpha_dropout: float | None):
    """The network and regularisation chosen, checked before any data is loaded."""
    from actprof.model import config_for
    from actprof.pipeline import Recipe
    from actprof.settings import ARCHITECTURES, parse_choices

    architecture = parse_choices(model, ARCHITECTURES, "--model")
    if len(architecture) > 1:
        raise _usage("--model takes one network per run; give each network its own --models directory")
    recipe = Recipe(architecture=architecture[0], dropout=dropout, alpha_dropout=alpha_dropout)
    if alpha_dropout is not None and not any(a.alpha_dropout for a in acts):
        raise _usage("--alpha-dropout applies to selu only; use --dropout for the others")
    if dropout is not None and all(a.alpha_dropout for a in acts):
        raise _usage("--dropout does not apply to selu (it uses alpha dropout); use --alpha-dropout")
    for act in acts:  # ModelConfig checks the rates
        config_for(act, dropout=dropout, alpha_dropout=alpha_dropout, architecture=recipe.architecture)
    return recipe


def _say_skipped(skipped: list[str], rewrite: str) -> None:
    if skipped:
        _say(f"{rewrite}: skipped {', '.join(skipped)} (not monotonic non-decreasing: the rewrite would not be exact)")


def _check_device(device: str) -> None:
    """Refuse ``--device cuda`` before any data is loaded when PyTorch has no GPU."""
    if device != "cpu":
        from actprof.train import resolve_device

        resolve_device(device)


def _seeds(seed: str, count: int | None) -> list[int]:
    """``--seed 0,1,2`` or ``--seed S --seeds N`` → the seeds to train with, first one exported."""
    try:
        given = [int(s) for s in seed.split(",") if s.strip()]
    except ValueError:
        raise _usage(f"--seed must be an integer or a comma list of integers, got {seed!r}") from None
    if not given or any(s < 0 for s in given):
        raise _usage(f"--seed must be non-negative integers, got {seed!r}")
    if count is not None:
        if len(given) > 1:
            raise _usage("give either --seed as a list or --seeds N, not both")
        if not 1 <= count <= 100:
            raise _usage(f"--seeds must be between 1 and 100, got {count}")
        given = list(range(given[0], given[0] + count))
    if len(set(given)) != len(given):
        raise _usage(f"--seed lists a seed twice: {seed!r}")
    return given


@app.command("profile")
def profile_command(
    models: ModelsOpt = Path("models"),
    act: Annotated[str, typer.Option("--act", help="Activations to profile: a comma list or 'all'.")] = "all",
    provider: ProviderOpt = "cpu",
    batch_sizes: BatchSizesOpt = "1,64",
    threads: Annotated[int, typer.Option(help="ORT intra-op threads (0: ORT default).")] = 0,
    opt_level: Annotated[str, typer.Option("--opt-level", help="disabled | basic | extended | all.")] = "all",
    min_time: MinTimeOpt = 0.5,
    min_runs: Annotated[int, typer.Option("--min-runs", help="Timed runs per target, at least.")] = 30,
    ablation: Annotated[bool, typer.Option(help="Also time each model with ReLU / identity swapped in.")] = True,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="Capture CUDA graphs (CUDA only).")] = False,
    baseline: BaselineOpt = "relu",
    precision: InferencePrecisionOpt = "fp32",
    calibration_images: Annotated[
        int, typer.Option("--calibration-images", help="MNIST training images that calibrate int8.")
    ] = 512,
    data_dir: DataDirOpt = None,
    dataset: DatasetOpt = "auto",
    profile_on: ProfileOnOpt = None,
    ray_address: RayAddressOpt = None,
    out: OutOpt = Path("reports"),
) -> None:
    """Time inference per provider × precision × batch; accuracy and memory per cell, per-op time, fusion, ablation."""
    from actprof import activations, pipeline, report

    settings = pipeline.profile_settings(
        provider=provider,
        batch_sizes=batch_sizes,
        threads=threads,
        opt_level=opt_level,
        min_time=min_time,
        min_runs=min_runs,
        ablation=ablation,
        cuda_graph=cuda_graph,
        say=_say,
        precision=precision,
        calibration_images=calibration_images,
    )
    activations.get(baseline)
    names = None if act.strip().lower() == "all" else [a.name for a in activations.parse_list(act)]
    console = _console()
    remote = _remote_profile(profile_on, ray_address, threads)
    record = pipeline.profile_models(
        models,
        names,
        settings,
        baseline=baseline,
        out=out,
        console=console,
        data_dir=data_dir,
        dataset=dataset,
        profile_on=remote,
    )
    report.print_profile(record, console=console)
    console.print(f"wrote {out / 'profile.json'} ({record.seconds:.0f} s)")


@app.command("microbench")
def microbench_command(
    act: Annotated[str, typer.Option("--act", help="Activations: a comma list or 'all'.")] = "all",
    provider: ProviderOpt = "cpu",
    sizes: Annotated[
        str | None, typer.Option(help="Comma list of tensor sizes in elements (default: 1 MiB and 2×L3).")
    ] = None,
    threads: ThreadsOpt = 0,
    min_time: Annotated[float, typer.Option("--min-time", help="Seconds of timed runs per op and size.")] = 0.2,
    out: OutOpt = Path("reports"),
) -> None:
    """Each activation as a single ONNX op: GB/s and the fraction of copy bandwidth, per provider."""
    from actprof import activations, microbench, pipeline, report, runtime, storage
    from actprof.settings import check_timing, parse_positive_ints

    acts = activations.parse_list(act)
    check_timing(min_time=min_time, min_runs=1, threads=threads)
    runtime.ort_runtime(threads)
    requested = runtime.parse_providers(provider)
    providers = pipeline.providers_that_bind(requested, explicit=provider.strip().lower() != "all", say=_say)
    elements = parse_positive_ints(sizes, "--sizes", limit=1 << 31) if sizes else None
    console = _console()
    with console.status("microbenchmark") as status:
        records = [
            microbench.measure(acts, provider=name, sizes=elements, min_time=min_time, on_progress=status.update)
            for name in providers
        ]
    record = microbench.merge(records)
    storage.write_json(out / "microbench.json", record)
    report.print_microbench(record, console=console)
    console.print(f"wrote {out / 'microbench.json'}")


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
    out: OutOpt = Path("reports"),
) -> None:
    """The trade-off: convergence, latency, per-op share, fusion, and a verdict with the break-even."""
    from actprof import pipeline, report

    formats = report.parse_formats(format)
    if target is not None and not 0 < target <= 100:
        raise _usage(f"--target must be a validation accuracy in % (0-100], got {target}")
    console = _console()
    fraction = target / 100 if target else None
    pipeline.report(
        models,
        results,
        baseline=baseline,
        target=fraction,
        formats=formats,
        out=out,
        console=console,
        highlight=_highlight(highlight),
        before_tables=lambda written: console.print("wrote " + ", ".join(str(p) for p in written)),
    )


def _highlight(spec: str | None) -> list[str] | None:
    from actprof import activations

    return [a.name for a in activations.parse_list(spec)] if spec else None


@app.command("run")
def run_command(
    act: ActOpt = "all",
    epochs: EpochsOpt = 1,
    provider: ProviderOpt = "cpu",
    batch_sizes: BatchSizesOpt = "1,64",
    min_time: MinTimeOpt = 0.1,
    seed: SeedOpt = "0",
    seeds: SeedsOpt = None,
    lr: LrOpt = "1e-3",
    model: ModelOpt = "seed",
    dropout: DropoutOpt = None,
    alpha_dropout: AlphaDropoutOpt = None,
    force: ForceOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    cpus_per_task: CpusPerTaskOpt = 0,
    profile_on: ProfileOnOpt = None,
    device: DeviceOpt = "cpu",
    data_dir: DataDirOpt = None,
    dataset: DatasetOpt = "auto",
    baseline: BaselineOpt = "relu",
    rewrite: Annotated[str, typer.Option(help="none | pool-first (monotonic activations get both).")] = "none",
    precision: InferencePrecisionOpt = "fp32",
    highlight: HighlightOpt = None,
    models: ModelsOpt = Path("models"),
    out: OutOpt = Path("reports"),
) -> None:
    """train-export → profile → report in one go (offline: on the bundled MNIST sample)."""
    from actprof import activations, export, pipeline
    from actprof.records import TrainConfig

    acts = activations.parse_list(act)
    if baseline not in {a.name for a in acts}:
        acts = [activations.get(baseline), *acts]
    seed_list = _seeds(seed, seeds)
    lrs = parse_positive_floats(lr, "--lr")
    recipe = _recipe(acts, model, dropout, alpha_dropout)
    placement = _placement(executor, ray_address, cpus_per_task, device, profile_on=profile_on)
    train_config = TrainConfig(epochs=epochs, seed=seed_list[0], lr=lrs[0], device=device)
    if placement is None:
        _check_device(train_config.device)
    _say_skipped(export.check_rewrite(rewrite, [a for a in acts if a.name != baseline] or acts), rewrite)
    settings = pipeline.profile_settings(
        provider=provider,
        batch_sizes=batch_sizes,
        threads=0,
        opt_level="all",
        min_time=min_time,
        min_runs=20,
        ablation=True,
        cuda_graph=False,
        say=_say,
        precision=precision,
    )
    pipeline.run(
        acts,
        train_config,
        settings,
        models=models,
        out=out,
        baseline=baseline,
        rewrite=rewrite,
        data_dir=data_dir,
        dataset=dataset,
        extra_seeds=seed_list[1:],
        lrs=lrs,
        recipe=recipe,
        force=force,
        placement=placement,
        profile_on=_remote_profile(profile_on, ray_address if profile_on else None, 0),
        console=_console(),
        highlight=_highlight(highlight),
    )


@app.command("swap")
def swap_command(
    model: Annotated[Path, typer.Argument(help="Any ONNX model with one input (e.g. a ResNet-50).")],
    to: Annotated[
        str, typer.Option("--to", help="Candidates for every site: a comma list (relu, elu, gelu, silu, identity…).")
    ] = "relu,elu,gelu,silu,identity",
    sites: Annotated[
        str | None, typer.Option("--sites", help="Replace only these sites (1-based, as listed), e.g. 1,2,5.")
    ] = None,
    provider: ProviderOpt = "cpu",
    precision: InferencePrecisionOpt = "fp32",
    batch_sizes: BatchSizesOpt = "1",
    input_shape: Annotated[
        str | None, typer.Option("--input-shape", help="name=1x3x224x224 for free dimensions (or another batch).")
    ] = None,
    inputs: Annotated[
        Path | None, typer.Option("--inputs", help="An .npz with real inputs (default: random normal, --seed).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random inputs.")] = 0,
    threads: Annotated[int, typer.Option(help="Intra-op threads (0: one per physical core).")] = 0,
    min_time: MinTimeOpt = 0.5,
    min_runs: Annotated[int, typer.Option("--min-runs", help="Timed runs per variant, at least.")] = 20,
    out: OutOpt = Path("reports/swap"),
) -> None:
    """Price every activation inside any ONNX model: swap them all for each candidate, profile side by side."""
    from dataclasses import replace

    from actprof import pipeline
    from actprof import sites as site_table

    candidates = site_table.parse_candidates(to)
    if seed < 0:
        raise _usage(f"--seed must be non-negative, got {seed}")
    settings = pipeline.profile_settings(
        provider=provider,
        batch_sizes=batch_sizes,
        threads=threads,
        opt_level="all",
        min_time=min_time,
        min_runs=min_runs,
        ablation=False,
        cuda_graph=False,
        say=_say,
        precision=precision,
    )
    settings = replace(settings, input="random normal inputs" if inputs is None else f"inputs from {inputs.name}")
    console = _console()
    written = pipeline.swap(
        model,
        candidates,
        settings,
        out=out,
        site_spec=sites,
        input_shape=input_shape,
        inputs_file=inputs,
        seed=seed,
        console=console,
    )
    console.print("wrote " + ", ".join(str(p) for p in written))


@app.command("diff")
def diff_command(
    base: Annotated[Path, typer.Argument(help="Baseline results: a report directory or report.json.")],
    new: Annotated[Path, typer.Argument(help="New results: a report directory or report.json.")],
    threshold: Annotated[str, typer.Option(help="Allowed regression, e.g. 5% or 0.05.")] = "5%",
) -> None:
    """CI gate: exit 1 when a latency ratio or an accuracy regressed beyond the threshold."""
    from actprof import report, verdict

    limit = verdict.parse_threshold(threshold)
    changes = verdict.diff(verdict.load_report(base), verdict.load_report(new), threshold=limit)
    report.print_diff(changes, threshold=limit, console=_console())
    regressions = [c for c in changes if c.regressed]
    if regressions:
        _fail(f"{len(regressions)} regression(s) beyond {100 * limit:g}%: " + "; ".join(c.what for c in regressions), 1)


@app.command("optimize")
def optimize_command(
    model: Annotated[Path, typer.Argument(help="An exported model, e.g. models/elu.onnx.")],
    out: Annotated[Path | None, typer.Option(help="Where to write (default: <model>+pool-first.onnx).")] = None,
) -> None:
    """Exact pool-first rewrite: a monotonic activation moved after its MaxPool, parity-checked (≤ 1e-6)."""
    from actprof import pipeline

    target, moved, max_diff, checked = pipeline.optimize(model, out)
    console = _console()
    console.print(
        f"moved {moved} activation(s) after their MaxPool; max |Δlogit| {max_diff:.1e} on "
        f"{checked} real images; wrote {target}"
    )
    speed = pipeline.rewrite_speed(model.read_bytes(), target.read_bytes())
    if speed.high < 1:
        advice = "faster here: ship the rewrite"
    elif speed.low > 1:
        advice = "SLOWER here (the rewrite can break a fusion the runtime had): keep the original on this runtime"
    else:
        advice = "no faster here, within noise: either will do"
    console.print(
        f"ORT CPU, batch 1: the rewrite runs {speed.value:.2f}× the original's latency "
        f"[95% CI {speed.low:.2f}, {speed.high:.2f}] — {advice}; profile it on your deployment runtime to be sure",
        markup=False,
        highlight=False,
    )


@app.command("env")
def env_command() -> None:
    """Versions, CPU, and which ONNX Runtime providers are compiled in and actually bind here."""
    from actprof import environment, report, runtime
    from actprof.settings import PROVIDERS

    statuses = [runtime.backend(p).status() for p in PROVIDERS]
    report.print_environment(environment.capture(), console=_console(), providers=statuses, gpu=environment.gpu_info())


def _usage(message: str) -> ActprofError:
    from actprof.errors import UsageError

    return UsageError(message)


EXIT_INTERRUPTED = 130
INTERRUPTED = "interrupted; artifacts already written are complete, nothing partial was left"


def main() -> None:
    """Entry point: user errors become one line on stderr and a documented exit code, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        _fail(INTERRUPTED, EXIT_INTERRUPTED)
    except typer.Exit as exc:
        code = exc.exit_code
    except ActprofError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.TyperException as exc:  # typer's own usage errors: bad option values, unknown options
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message())
            _exit(EXIT_USAGE)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see: actprof {ctx.info_name} --help)" if ctx is not None and ctx.parent else ""
        _fail(f"{exc.format_message()}{hint}", getattr(exc, "exit_code", EXIT_RUNTIME))
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into Exit(130), which click returns here
        _fail(INTERRUPTED, EXIT_INTERRUPTED)
    _exit(code if isinstance(code, int) else 0)


def _exit(code: int) -> None:
    """End with ``code``. The command is over: a Ctrl-C during the interpreter's shutdown (threads joined,
    atexit handlers) would otherwise end the process by the signal, exit -2, instead of the code it earned
    (seen when a run finished just before the Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def _fail(message: str, code: int) -> None:
    print(f"actprof: error: {message}", file=sys.stderr)
    if code == EXIT_INTERRUPTED:
        # A Ctrl-C that lands inside a C extension's import can leave the interpreter re-raising SIGINT
        # at shutdown (exit -2 instead of 130, seen with torch). Every temporary file was already removed
        # by the atomic writers' finally blocks, so end here, with the documented code.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _exit(code)
