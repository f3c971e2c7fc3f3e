"""The one home of orchestration: train → export → verify per activation, and the run stage loop.

Stages do the work (``train``, ``export``, ``profile``, ``verdict``, ``report``); this module decides what
runs in which order, what is written where, and reports progress. ``cli`` only parses options and calls
in here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from actprof import export, runtime, storage, sweep
from actprof.errors import ActprofError, ProviderUnavailable, SweepFailed, UsageError
from actprof.records import (
    Interval,
    ModelConfig,
    ModelRecord,
    ProfileRecord,
    ProfileSettings,
    TrainConfig,
    TrainJob,
)
from actprof.settings import (
    CALIBRATION_IMAGES,
    INFERENCE_PRECISIONS,
    SUPPORTED_PRECISIONS,
    check_timing,
    parse_choices,
    runs_on,
)

if TYPE_CHECKING:
    from rich.console import Console

    from actprof.activations import Activation
    from actprof.cluster import Placement
    from actprof.data import MNIST

Say = Callable[[str], None]


@dataclass(frozen=True)
class ExportOptions:
    """How trained models become ONNX files, and where they go."""

    out: Path
    opset: int = export.DEFAULT_OPSET
    exporter: str = "dynamo"
    rewrite: str = "none"  # "pool-first": also write <act>+pool-first.onnx where it is exact


def train_and_export(
    act: Activation,
    model_config: ModelConfig,
    train_config: TrainConfig,
    data: MNIST,
    *,
    out_dir: Path,
    opset: int = export.DEFAULT_OPSET,
    exporter: str = "dynamo",
    on_step: Callable[[int, int], None] | None = None,
    rewrite: str = "none",
    extra_seeds: Sequence[int] = (),
    lrs: Sequence[float] = (),
    force: bool = False,
) -> ModelRecord:
    """Train one activation at every learning rate (``lrs``; default the config's) and seed, export and
    verify each run, and write ``<act>.onnx`` + ``<act>.json`` for the chosen rate's first seed.

    With ``rewrite="pool-first"`` also ``<act>+pool-first.onnx`` + ``.json``. Raises SweepFailed when a
    run failed (the finished runs are kept in ``out_dir/runs/``, so running again resumes).
    """
    options = ExportOptions(out=out_dir, opset=opset, exporter=exporter, rewrite=rewrite)
    export.check_options(opset=opset, exporter=exporter)
    export.check_rewrite(rewrite, [act])
    plan = Sweep.of(train_config, lrs, extra_seeds, force=force)
    records, failures = train_sweep(
        [(act, model_config)], train_config, data, options, plan, progress=lambda _act: on_step, baseline=None
    )
    raise_failures(failures, out_dir)
    return records[0]


@dataclass(frozen=True)
class Sweep:
    """What a training sweep covers beyond the activations: learning rates and seeds, and whether runs
    already saved are trained again."""

    lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    force: bool = False

    @classmethod
    def of(cls, train: TrainConfig, lrs: Sequence[float], extra_seeds: Sequence[int], *, force: bool) -> Sweep:
        """The config's rate and seed, or the rates given, and the extra seeds after the config's."""
        return cls(lrs=tuple(lrs) or (train.lr,), seeds=(train.seed, *extra_seeds), force=force)

    @property
    def trainings_per_activation(self) -> int:
        return len(self.lrs) * len(self.seeds)


Progress = Callable[[str], Callable[[int, int], None] | None]  # activation -> its step callback


def train_sweep(
    models: Sequence[tuple[Activation, ModelConfig]],
    train_config: TrainConfig,
    data: MNIST,
    options: ExportOptions,
    plan: Sweep,
    *,
    progress: Progress,
    baseline: str | None,
    placement: Placement | None = None,
    say: Say = lambda _m: None,
) -> tuple[list[ModelRecord], list[sweep.Failure]]:
    """Every (activation, learning rate, seed) training not already saved, then one model record per
    activation whose runs finished; ``progress(act)`` gets the activation's steps over all its runs.

    ``baseline``: the activation the others are judged against gets no rewrite (the rewrite applies only
    where it is exact, and not to the baseline). ``placement``: train on a Ray cluster (None: here, one
    run after another).
    """
    runs_dir = Path(options.out) / sweep.RUNS_DIR
    jobs = {
        act.name: sweep.jobs(
            config, train_config, lrs=plan.lrs, seeds=plan.seeds, opset=options.opset, exporter=options.exporter
        )
        for act, config in models
    }
    done, diverged, todo = sweep.pending(
        [j for js in jobs.values() for j in js], runs_dir, data.identity, force=plan.force
    )
    if done or diverged:
        finished_before = len(done) + len(diverged)
        say(
            f"resumed: {finished_before} of {finished_before + len(todo)} trainings already in {runs_dir}, "
            f"unchanged ({len(diverged)} of them diverged; --force retrains them)"
        )

    def job_progress(job: TrainJob) -> Callable[[int, int], None] | None:
        on_step = progress(job.model.activation)
        if on_step is None:
            return None
        index, count = jobs[job.model.activation].index(job), plan.trainings_per_activation
        return lambda step, total: on_step(index * total + step, count * total)

    if placement is None:
        trained, failures = sweep.run_local(todo, data, runs_dir, on_step=job_progress)
    else:
        from actprof import cluster

        finished = dict.fromkeys(jobs, 0)

        def one_more(job: TrainJob) -> None:
            finished[job.model.activation] += 1
            on_step = progress(job.model.activation)
            if on_step is not None:
                on_step(finished[job.model.activation], plan.trainings_per_activation)

        trained, failures = cluster.run_ray(todo, data, runs_dir, placement, on_done=one_more)
    failures = [*diverged, *failures]
    results = {**done, **trained}
    records = []
    for act, _ in models:
        finished = [results[j.stem] for j in jobs[act.name] if j.stem in results]
        failed_here = any(f.job.model.activation == act.name for f in failures)
        try:
            onnx_bytes, record = sweep.assemble(act, finished, plan.lrs, len(plan.seeds))
        except ActprofError:
            if failed_here:  # its failures are reported already
                continue
            raise
        rewrite = options.rewrite if act.monotonic and act.name != baseline else "none"
        records.append(_save_model(act, onnx_bytes, record, options.out, rewrite, data))
    return records, failures


def _save_model(act: Activation, onnx_bytes: bytes, record: ModelRecord, out: Path, rewrite: str, data: MNIST):
    """Write ``<act>.onnx`` + ``.json`` (and the rewrite's pair); the rewrite is verified before anything."""
    from actprof.data import to_tensor

    rewritten = None
    if rewrite != "none":
        data_rw, parity, _ = export.rewrite_pool_first(onnx_bytes, to_tensor(data.test_images).numpy())
        rewritten = (data_rw, export.rewritten_record(record, data_rw, parity, rewrite))
    storage.save_model(out, act.name, onnx_bytes, record)
    if rewritten:
        storage.save_model(out, f"{act.name}+{rewrite}", *rewritten)
    return record


def raise_failures(failures: Sequence[sweep.Failure], out: Path) -> None:
    """SweepFailed (exit 1) naming the failed runs, when there are any."""
    if failures:
        shown = "; ".join(str(f) for f in failures[:3]) + (
            f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
        )
        raise SweepFailed(
            f"{len(failures)} training(s) failed ({shown}); the finished ones are saved in "
            f"{Path(out) / sweep.RUNS_DIR} and the same command resumes (diverged runs stay recorded as such: "
            "drop that rate, or lower it, or --force)"
        )


def train_export_all(
    acts: Sequence[Activation],
    train_config: TrainConfig,
    options: ExportOptions,
    *,
    console: Console,
    alpha: float | None = None,
    init: str | None = None,
    data_dir: Path | None = None,
    dataset: str = "auto",
    extra_seeds: Sequence[int] = (),
    baseline: str | None = None,
    mnist: MNIST | None = None,
    lrs: Sequence[float] = (),
    recipe: Recipe | None = None,
    force: bool = False,
    placement: Placement | None = None,
) -> tuple[list[ModelRecord], list[sweep.Failure]]:
    """Load MNIST once, then train, export and verify every activation at every learning rate and seed,
    with a progress bar per activation. Returns the activations assembled and the runs that failed
    (``raise_failures`` turns those into SweepFailed)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from actprof import data
    from actprof.model import config_for

    recipe = recipe or Recipe()
    mnist = mnist or data.load_mnist(data_dir=data_dir, dataset=dataset, log=lambda m: console.print(m))
    plan = Sweep.of(train_config, lrs, extra_seeds, force=force)
    models = [
        (
            act,
            config_for(
                act,
                param=alpha,
                init=init,
                dropout=recipe.dropout,
                alpha_dropout=recipe.alpha_dropout,
                architecture=recipe.architecture,
            ),
        )
        for act in acts
    ]
    columns = (TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks = {act.name: bar.add_task(act.name, total=None) for act in acts}
        records, failures = train_sweep(
            models,
            train_config,
            mnist,
            options,
            plan,
            progress=lambda name: lambda step, total: bar.update(tasks[name], completed=step, total=total),
            baseline=baseline,
            placement=placement,
            say=lambda m: console.print(m, markup=False, highlight=False),
        )
    return records, failures


@dataclass(frozen=True)
class Recipe:
    """The network and its regularisation, as the command line chose them (None: the family's default)."""

    architecture: str = "seed"
    dropout: float | None = None
    alpha_dropout: float | None = None


# --- profiling ---------------------------------------------------------------------------------------


def providers_that_bind(requested: list[str], *, explicit: bool, say: Say) -> list[str]:
    """Explicitly requested providers must bind (else a clear error); with 'all', skip and say why."""
    usable = []
    for name in requested:
        status = runtime.backend(name).status()
        if status.binds:
            usable.append(name)
        elif explicit:
            raise ProviderUnavailable(status.reason)
        else:
            say(f"skipped {name}: {status.reason}")
    return usable


def profile_settings(
    *,
    provider: str,
    batch_sizes: str,
    threads: int,
    opt_level: str,
    min_time: float,
    min_runs: int,
    ablation: bool,
    cuda_graph: bool,
    say: Say,
    precision: str = "fp32",
    calibration_images: int = CALIBRATION_IMAGES,
) -> ProfileSettings:
    """Settings for the profile stage from the command line's words (``profile`` and ``run`` alike).

    The ORT thread pool is sized here, before any session exists; providers that do not bind are refused
    when named, or skipped (and said) under 'all'. Every precision must run on at least one requested
    provider; cells a provider does not run (int8 on CUDA…) are skipped and said.
    """
    from actprof import profile

    check_timing(min_time=min_time, min_runs=min_runs, threads=threads)
    runtime.ort_runtime(threads)
    requested = runtime.parse_providers(provider)
    precisions = parse_choices(precision, INFERENCE_PRECISIONS, "--precision")
    check_precisions(requested, precisions, say=lambda _m: None)  # a mistake is refused before anything slow
    bound = providers_that_bind(requested, explicit=provider.strip().lower() != "all", say=say)
    check_precisions(bound, precisions, say=say)  # …and a precision no bound provider runs, under 'all'
    return ProfileSettings(
        providers=bound,
        batch_sizes=profile.parse_batch_sizes(batch_sizes),
        threads=runtime.global_threads(),
        opt_levels=profile.parse_opt_levels(opt_level),
        min_time=min_time,
        min_runs=min_runs,
        ablation=ablation,
        cuda_graph=cuda_graph,
        input="real MNIST test images (bundled sample)",
        precisions=precisions,
        calibration_images=calibration_images,
    )


def check_precisions(providers: list[str], precisions: list[str], *, say: Say) -> None:
    """Refuse a precision no requested provider runs; say which (provider, precision) cells are skipped."""
    for precision in precisions:
        runs_it = [p for p in providers if precision in SUPPORTED_PRECISIONS[p]]
        if not runs_it:
            where = ",".join(providers) or "none (nothing bound)"
            raise UsageError(f"--precision {precision} does not run on --provider {where}; {runs_on(precision)}")
        for provider in sorted(set(providers) - set(runs_it)):
            say(f"skipped {provider} {precision}: {provider} runs {', '.join(SUPPORTED_PRECISIONS[provider])}")


def profile_models(
    models: Path,
    names: list[str] | None,
    settings: ProfileSettings,
    *,
    baseline: str,
    out: Path,
    console: Console,
    data_dir: Path | None = None,
    dataset: str = "auto",
    mnist: MNIST | None = None,
    profile_on: RemoteProfile | None = None,
) -> ProfileRecord:
    """Profile the models found in ``models`` and write ``out/profile.json``.

    MNIST is loaded for the test split every deployment cell is scored on (and, for int8, the calibration
    images); derived int8/fp16 models are written to ``out/derived/`` (once everything was measured) so
    the exact files measured can be deployed. ``profile_on``: measure on the Ray node offering that
    resource instead of here (the record then names that node's hardware)."""
    from actprof import data, precision, profile

    found = storage.find_models(models, names)
    mnist = mnist or data.load_mnist(data_dir=data_dir, dataset=dataset, log=lambda m: console.print(m))
    if profile_on is not None:
        from actprof import cluster

        files = {p.name: p.read_bytes() for path, _ in found for p in (path, path.with_suffix(".json"))}
        with console.status(f"profiling on the Ray node offering {profile_on.resource!r}"):
            record, derived = cluster.profile_on(
                profile_on.resource,
                profile_on.address,
                files,
                names,
                settings,
                threads=profile_on.threads,
                baseline=baseline,
                mnist=mnist,
            )
    else:
        fp32 = {record.name: (path.name, path.read_bytes()) for path, record in found}
        with console.status("profiling") as status:
            deployment = precision.prepare(
                fp32, settings.precisions, mnist, calibration_images=settings.calibration_images, say=status.update
            )
            record = profile.run_profile(
                found, settings, baseline=baseline, on_progress=status.update, deployment=deployment
            )
        derived = dict(deployment.derived.values())
    for file, model in derived.items():  # only once every cell was measured: nothing partial
        storage.write_bytes_atomic(out / "derived" / file, model)
    storage.write_json(out / "profile.json", record)
    return record


@dataclass(frozen=True)
class RemoteProfile:
    """Profile on a Ray node the user selects by a custom resource, with ORT's requested thread count."""

    resource: str
    address: str | None = None
    threads: int = 0


# --- reporting and the whole run --------------------------------------------------------------------


def report(
    models: Path,
    results: Path,
    *,
    baseline: str,
    target: float | None,
    formats: list[str],
    out: Path,
    console: Console,
    highlight: list[str] | None = None,
    before_tables: Callable[[list[Path]], None] | None = None,
) -> list[Path]:
    """Build the verdict from the model records (and profile.json, microbench.json if present) and write
    every requested format; ``table`` prints to the console, last, ending with the decision table
    (``before_tables`` gets the written paths first, to say things above it)."""
    from actprof import report as report_module
    from actprof import verdict
    from actprof.records import MicrobenchRecord

    model_records = [record for _, record in storage.find_models(models)]
    profile_path = Path(results) / "profile.json"
    profile = storage.read_json(profile_path, ProfileRecord) if profile_path.exists() else None
    if profile is None:
        console.print(f"no {profile_path}: reporting training only (run actprof profile for latency)")
    microbench_path = Path(results) / "microbench.json"
    microbench = storage.read_json(microbench_path, MicrobenchRecord) if microbench_path.exists() else None
    built = verdict.build(model_records, profile, baseline=baseline, target=target)
    written = report_module.write_reports(out, formats, built, model_records, profile, microbench, highlight)
    if before_tables:
        before_tables(written)
    if "table" in formats:
        report_module.print_report(built, profile, console=console, microbench=microbench)
    return written


def run(
    acts: Sequence[Activation],
    train_config: TrainConfig,
    settings: ProfileSettings,
    *,
    models: Path,
    out: Path,
    baseline: str,
    rewrite: str,
    data_dir: Path | None,
    dataset: str,
    extra_seeds: Sequence[int],
    console: Console,
    highlight: list[str] | None = None,
    lrs: Sequence[float] = (),
    recipe: Recipe | None = None,
    force: bool = False,
    placement: Placement | None = None,
    profile_on: RemoteProfile | None = None,
) -> dict[str, float]:
    """train-export → profile → report; returns the seconds each stage took. The terminal output ends with
    the decision table."""
    from actprof import data
    from actprof import report as report_module

    stages: dict[str, float] = {}
    started = time.perf_counter()
    mnist = data.load_mnist(data_dir=data_dir, dataset=dataset, log=lambda m: console.print(m))  # once, for both
    records, failures = train_export_all(
        acts,
        train_config,
        ExportOptions(out=models, rewrite=rewrite),
        console=console,
        data_dir=data_dir,
        dataset=dataset,
        extra_seeds=extra_seeds,
        baseline=baseline,
        mnist=mnist,
        lrs=lrs,
        recipe=recipe,
        force=force,
        placement=placement,
    )
    stages["train + export"] = time.perf_counter() - started
    report_module.print_training(records, console=console)
    names = [r.name for r in records]
    if failures and baseline not in names:  # nothing to judge against: stop here
        raise_failures(failures, models)
    started = time.perf_counter()
    profile_models(
        models, names, settings, baseline=baseline, out=out, console=console, mnist=mnist, profile_on=profile_on
    )
    stages["profile"] = time.perf_counter() - started
    started = time.perf_counter()
    formats = list(report_module.FORMATS)

    def say_where(written: list[Path]) -> None:
        stages["report"] = time.perf_counter() - started
        total = f"; total {sum(stages.values()):.1f} s"
        console.print("stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()) + total)
        console.print("wrote " + ", ".join(str(p) for p in written))

    report(
        models,
        out,
        baseline=baseline,
        target=None,
        formats=formats,
        out=out,
        console=console,
        highlight=highlight,
        before_tables=say_where,
    )
    raise_failures(failures, models)  # the report covers what finished; the exit code says what did not
    return stages


def rewrite_speed(original: bytes, rewritten: bytes, *, min_seconds: float = 0.3) -> Interval:
    """The rewritten model's latency over the original's on ORT's CPU provider at batch 1 (median per-round
    ratio, interleaved): an exact rewrite can still be slower (it can break a fusion the runtime had)."""
    from actprof import latency, profile

    cpu = runtime.backend("cpu")
    x = profile.images(1)
    targets = {name: cpu.compute_target(cpu.load(data, opt_level="all"), x).run for name, data in
               (("original", original), ("rewritten", rewritten))}  # fmt: skip
    rounds = latency.interleave(targets, min_seconds=min_seconds, min_runs=30)
    return latency.ratio(rounds, "rewritten", "original")


def optimize(model: Path, out: Path | None) -> tuple[Path, int, float, int]:
    """The exact pool-first rewrite of an exported model, written beside it (with its record, if any).

    Returns (written path, activations moved, max |Δlogit|, images checked)."""
    from actprof import profile

    proto = export.load_model_file(model)
    data, parity, moved = export.rewrite_pool_first(proto.SerializeToString(), profile.images(export.PARITY_IMAGES))
    target = out or model.with_name(f"{model.stem}+pool-first.onnx")
    record_path = model.with_suffix(".json")
    record = storage.load_record(record_path) if record_path.is_file() and out is None else None
    storage.write_bytes_atomic(target, data)
    if record is not None:
        storage.write_json(target.with_suffix(".json"), export.rewritten_record(record, data, parity, "pool-first"))
    return target, moved, parity.max_abs_diff, parity.images


def swap(
    model: Path,
    candidates: list[str],
    settings: ProfileSettings,
    *,
    out: Path,
    site_spec: str | None,
    input_shape: str | None,
    inputs_file: Path | None,
    seed: int,
    console: Console,
) -> list[Path]:
    """Price every activation inside ``model``: variants built, checked and profiled; swap.* written."""
    from actprof import report as report_module
    from actprof import swap as swap_stage

    with console.status("swap") as status:
        record = swap_stage.run_swap(
            model,
            candidates,
            settings,
            out=out,
            site_spec=site_spec,
            input_shape=input_shape,
            inputs_file=inputs_file,
            seed=seed,
            say=status.update,
        )
    written = report_module.write_swap_reports(out, record)
    report_module.print_swap(record, console=console)
    return written
