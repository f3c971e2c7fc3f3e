"""``actprof profile``, ``actprof microbench`` and ``actprof swap``: parse, hand over, print what comes back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from actprof.activations import SITE_ROLES, candidates
from actprof.cli import build
from actprof.cli.app import app
from actprof.cli.console import RichReporter, console
from actprof.cli.options import (
    MICROBENCH,
    PROFILE,
    SWAP,
    BaselineOpt,
    BatchSizesOpt,
    DataDirOpt,
    DatasetOpt,
    InferencePrecisionOpt,
    MinRunsOpt,
    MinTimeOpt,
    ModelsOpt,
    OutOpt,
    ProfileOnOpt,
    ProviderOpt,
    RayAddressOpt,
    StacksOpt,
    ThreadsOpt,
    listed,
)
from actprof.settings.training import DEFAULT_STACKS, TRAIN_STACKS


@app.command("profile")
def profile_command(
    models: ModelsOpt = Path("models"),
    act: Annotated[str, typer.Option("--act", help="Activations to profile: a comma list or 'all'.")] = "all",
    provider: ProviderOpt = listed(PROFILE.providers),
    batch_sizes: BatchSizesOpt = listed(PROFILE.batch_sizes),
    threads: Annotated[
        int, typer.Option(help="Intra-op threads of every runtime (0: one per physical core, ORT's default).")
    ] = PROFILE.threads,
    opt_level: Annotated[str, typer.Option("--opt-level", help="disabled | basic | extended | all.")] = listed(
        PROFILE.opt_levels
    ),
    min_time: MinTimeOpt = PROFILE.min_time,
    min_runs: MinRunsOpt = PROFILE.min_runs,
    ablation: Annotated[
        bool, typer.Option(help="Also time each model with ReLU / identity swapped in.")
    ] = PROFILE.ablation,
    cuda_graph: Annotated[bool, typer.Option("--cuda-graph", help="Capture CUDA graphs (CUDA only).")] = False,
    baseline: BaselineOpt = "relu",
    precision: InferencePrecisionOpt = listed(PROFILE.precisions),
    calibration_images: Annotated[
        int, typer.Option("--calibration-images", help="MNIST training images that calibrate int8.")
    ] = PROFILE.calibration_images,
    data_dir: DataDirOpt = None,
    dataset: DatasetOpt = "auto",
    profile_on: ProfileOnOpt = None,
    ray_address: RayAddressOpt = None,
    runtime_versions: Annotated[
        str | None,
        typer.Option(
            "--runtime-versions",
            help="Time the models under several builds of one runtime side by side, e.g. "
            "onnxruntime==1.20.1,onnxruntime==1.21.1,onnxruntime (a bare name: the one installed here); each "
            "release is installed once into an environment of its own (from the package index) and cached. "
            "Writes <out>/versions.json and versions.md.",
        ),
    ] = None,
    out: OutOpt = Path("reports"),
) -> None:
    """Time inference per provider × precision × batch; accuracy and memory per cell, per-op time, fusion, ablation."""
    from actprof import activations, api
    from actprof.report.terminal import print_profile

    settings = build.profile_settings(
        provider=provider,
        batch_sizes=batch_sizes,
        threads=threads,
        min_time=min_time,
        min_runs=min_runs,
        precision=precision,
        opt_level=opt_level,
        ablation=ablation,
        cuda_graph=cuda_graph,
        calibration_images=calibration_images,
    )
    names = None if act.strip().lower() == "all" else [a.name for a in activations.parse_list(act)]
    if runtime_versions is not None:
        _profile_versions(models, runtime_versions, settings, names, baseline, out, profile_on)
        return
    record = api.profile(
        models,
        settings=settings,
        names=names,
        baseline=baseline,
        data=api.DataSource(data_dir, dataset),
        out=out,
        remote=build.remote_profile(profile_on, ray_address),
        skip_unbound=build.providers(provider)[1],
        reporter=RichReporter(),
    )
    print_profile(record, console=console())
    console().print(f"wrote {out / 'profile.json'} ({record.seconds:.0f} s)")


def _profile_versions(models, runtime_versions, settings, names, baseline, out, profile_on) -> None:
    from actprof import api
    from actprof.errors import UsageError
    from actprof.report.versions import print_versions

    if profile_on is not None:
        raise UsageError("--runtime-versions runs here; leave --profile-on out")
    done = api.profile_versions(
        models, runtime_versions, settings=settings, names=names, baseline=baseline, out=out, reporter=RichReporter()
    )
    print_versions(done.record, console=console())
    console().print(f"wrote {', '.join(str(p) for p in done.written)} ({done.record.seconds:.0f} s)")


@app.command("step-time")
def step_time_command(
    models: ModelsOpt = Path("models"),
    act: Annotated[str, typer.Option("--act", help="Activations: a comma list or 'all'.")] = "all",
    stacks: StacksOpt = listed(DEFAULT_STACKS),
    baseline: BaselineOpt = "relu",
    data_dir: DataDirOpt = None,
    dataset: DatasetOpt = "auto",
    out: OutOpt = Path("reports"),
) -> None:
    """Time each activation's training step on each stack (eager, compile, actprof): what prices the seconds."""
    from actprof import activations, api
    from actprof.settings.parse import parse_choices

    names = None if act.strip().lower() == "all" else [a.name for a in activations.parse_list(act)]
    record = api.step_time(
        models,
        stacks=parse_choices(stacks, TRAIN_STACKS, "--stacks"),
        names=names,
        baseline=baseline,
        data=api.DataSource(data_dir, dataset),
        out=out,
        reporter=RichReporter(),
    )
    from actprof.report.terminal import print_steps

    print_steps(record, console=console())
    console().print(f"wrote {out / 'steps.json'} ({record.seconds:.0f} s)")


@app.command("microbench")
def microbench_command(
    act: Annotated[str, typer.Option("--act", help="Activations: a comma list or 'all'.")] = "all",
    provider: ProviderOpt = listed(MICROBENCH.providers),
    sizes: Annotated[
        str | None, typer.Option(help="Comma list of tensor sizes in elements (default: 1 MiB and 2×L3).")
    ] = None,
    threads: ThreadsOpt = MICROBENCH.threads,
    min_time: Annotated[
        float, typer.Option("--min-time", help="Seconds of timed runs per op and size.")
    ] = MICROBENCH.min_time,
    out: OutOpt = Path("reports"),
) -> None:
    """Each activation as a single ONNX op: GB/s and the fraction of copy bandwidth, per provider."""
    from actprof import activations, api
    from actprof.report.terminal import print_microbench
    from actprof.schema.storage import write_json
    from actprof.settings.parse import parse_positive_ints

    acts = activations.parse_list(act)
    elements = parse_positive_ints(sizes, "--sizes", limit=1 << 31) if sizes else None
    settings = api.MicrobenchSettings(
        providers=build.providers(provider)[0], sizes=elements, threads=threads, min_time=min_time
    )
    record = api.microbench(acts, settings=settings, skip_unbound=build.providers(provider)[1], reporter=RichReporter())
    write_json(out / "microbench.json", record)
    print_microbench(record, console=console())
    console().print(f"wrote {out / 'microbench.json'}")


@app.command("swap")
def swap_command(
    model: Annotated[Path, typer.Argument(help="Any ONNX model (a ResNet-50, a detector, a BERT encoder…).")],
    to: Annotated[
        str, typer.Option("--to", help=f"Candidates for every site, a comma list of: {', '.join(candidates())}.")
    ] = "relu,elu,gelu,silu,identity",
    sites: Annotated[
        str | None,
        typer.Option(
            "--sites",
            help="Replace only these sites, any role: numbers as listed (1,2,5 or 3-8), a kind (gelu), or all.",
        ),
    ] = None,
    roles: Annotated[
        str,
        typer.Option("--roles", help=f"Replace the sites with these roles: {', '.join(SITE_ROLES)}, or all."),
    ] = "activation",
    provider: ProviderOpt = listed(SWAP.providers),
    precision: InferencePrecisionOpt = listed(SWAP.precisions),
    batch_sizes: BatchSizesOpt = listed(SWAP.batch_sizes),
    input_shape: Annotated[
        list[str] | None,
        typer.Option(
            "--input-shape", help="name=1x3x224x224 for free dimensions (or another batch); repeat it or use commas."
        ),
    ] = None,
    input_value: Annotated[
        list[str] | None,
        typer.Option(
            "--input-value",
            help="name=VALUE fills an input with one value (a sample rate, a zero state); repeat it or use commas.",
        ),
    ] = None,
    vocab_size: Annotated[
        list[str] | None,
        typer.Option(
            "--vocab-size",
            help="name=N draws an integer input's token ids below N (default: its table); repeat it or use commas.",
        ),
    ] = None,
    inputs: Annotated[
        Path | None,
        typer.Option("--inputs", help="An .npz with real inputs, one array per input name (default: random)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random inputs.")] = 0,
    threads: Annotated[int, typer.Option(help="Intra-op threads (0: one per physical core).")] = SWAP.threads,
    min_time: MinTimeOpt = SWAP.min_time,
    min_runs: Annotated[int, typer.Option("--min-runs", help="Timed runs per variant, at least.")] = SWAP.min_runs,
    out: OutOpt = Path("reports/swap"),
    list_only: Annotated[
        bool,
        typer.Option("--list", help="List the inputs and the sites (numbered for --sites, with roles) and stop."),
    ] = False,
) -> None:
    """Price the activations inside any ONNX model: each candidate at its hidden activation sites (--roles,
    --sites), profiled side by side, with how far the outputs move."""
    from actprof import api
    from actprof.graphs.candidates import parse_candidates
    from actprof.graphs.sites import parse_roles
    from actprof.report.terminal import print_swap

    options = api.SwapOptions(
        candidates=parse_candidates(to),
        sites=sites,
        roles=parse_roles(roles),
        input_shape=_joined(input_shape),
        input_value=_joined(input_value),
        vocab_size=_joined(vocab_size),
        inputs=inputs,
        seed=seed,
    )
    settings = build.profile_settings(  # checked before --list too: a listing promises the run would start
        provider=provider,
        batch_sizes=batch_sizes,
        threads=threads,
        min_time=min_time,
        min_runs=min_runs,
        precision=precision,
        ablation=SWAP.ablation,
        input=SWAP.input if inputs is None else f"inputs from {inputs.name}",
    )
    if list_only:
        _list_swap(model, options, settings)
        return
    record, written = api.swap(
        model,
        options=options,
        settings=settings,
        out=out,
        skip_unbound=build.providers(provider)[1],
        reporter=RichReporter(),
    )
    print_swap(record, console=console())
    console().print("wrote " + ", ".join(str(p) for p in written))


def _joined(values: list[str] | None) -> str | None:
    """A repeated option's values as one comma list (each may be a comma list itself)."""
    return ",".join(values) if values else None


def _list_swap(model: Path, options, settings) -> None:
    """``swap --list``: what each input gets at the first batch size, then the sites."""
    from rich.markup import escape

    from actprof.api.networks import swap_listing
    from actprof.report.terminal import print_sites

    batch = settings.batch_sizes[0]
    listing = swap_listing(model, options=options, batch=batch, providers=settings.providers)
    for spec in listing.inputs:
        shape = "x".join(map(str, spec.shape)) or "scalar"
        console().print(f"input {escape(spec.name)}: {shape} {spec.dtype}, {escape(spec.source)}", highlight=False)
    print_sites(listing.sites, listing.replaced, console=console())
