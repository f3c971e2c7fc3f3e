"""actprof's public Python API: every command as a function that takes validated configs and returns the
typed records, for notebooks and scripts. The command line (``actprof.cli``) is built on these.

    from pathlib import Path
    from actprof import api

    trained = api.train_export(["relu", "elu"], data=api.DataSource(dataset="sample"))
    profile = api.profile(Path("models"), settings=api.ProfileSettings(batch_sizes=[1, 64]))
    report = api.report(Path("models"), Path("reports"))
    for verdict in report.record.verdicts:
        print(verdict.call, verdict.summary)

Each function checks what it was given before anything slow starts, raises ``actprof.errors.ActprofError``
(one line naming the fix) for anything a user can get wrong, and reports progress to ``reporter`` (silent by
default; ``pipeline.progress.Reporter`` says how to show it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from actprof import activations
from actprof.activations import Activation
from actprof.api.networks import SwapListing, optimize, swap, swap_listing, swap_sites
from actprof.api.results import diff, history_add, history_show
from actprof.data.config import DataSource
from actprof.data.mnist import MNIST, load
from actprof.export.config import ExportOptions
from actprof.launchers.config import Placement, RemoteProfile
from actprof.measure.config import MicrobenchSettings, SwapOptions
from actprof.pipeline.progress import QUIET, Reporter
from actprof.pipeline.reporting import Report
from actprof.pipeline.steps import check_stacks
from actprof.pipeline.training import Trained, TrainingStage
from actprof.schema.history import AddedRun, History
from actprof.schema.profiling import MicrobenchRecord, ProfileRecord
from actprof.schema.reproduction import ReproductionRecord
from actprof.schema.steps import StepCostRecord
from actprof.schema.versions import VersionsRecord
from actprof.settings.parse import one_of
from actprof.settings.profile import RUN_PROFILE, ProfileSettings
from actprof.settings.training import DEFAULT_STACKS, TRAIN_STACKS, ModelConfig, TrainConfig
from actprof.settings.versions import RuntimePin
from actprof.training.config import Recipe, Sweep

__all__ = [
    "AddedRun",
    "DataSource",
    "ExportOptions",
    "History",
    "MicrobenchSettings",
    "ModelConfig",
    "Placement",
    "ProfileSettings",
    "Recipe",
    "RemoteProfile",
    "Reporter",
    "SwapListing",
    "SwapOptions",
    "Sweep",
    "TrainConfig",
    "diff",
    "history_add",
    "history_show",
    "microbench",
    "optimize",
    "profile",
    "profile_versions",
    "report",
    "reproduce",
    "run",
    "step_time",
    "swap",
    "swap_listing",
    "swap_sites",
    "train_export",
]

Activations = Sequence[str | Activation] | str


def _activations(acts: Activations) -> list[Activation]:
    """Names (or ``"relu,elu"``, ``"all"``) or rows of the activation table → rows, in order, without repeats."""
    if isinstance(acts, str):
        return activations.parse_list(acts)
    rows = [a if isinstance(a, Activation) else activations.get(a) for a in acts]
    return list({a.name: a for a in rows}.values())


@dataclass(frozen=True)
class ProfiledVersions:
    record: VersionsRecord
    written: list[Path]


@dataclass(frozen=True)
class Reproduction:
    record: ReproductionRecord
    written: list[Path]


def train_export(
    acts: Activations,
    *,
    train: TrainConfig = TrainConfig(),
    sweep: Sweep | None = None,
    recipe: Recipe = Recipe(),
    export: ExportOptions = ExportOptions(),
    data: DataSource | MNIST = DataSource(),
    placement: Placement | None = None,
    baseline: str | None = None,
    reporter: Reporter = QUIET,
) -> Trained:
    """Train every activation at every learning rate and seed of ``sweep`` (default: ``train``'s one rate
    and seed), export each run to ONNX and prove parity, and write ``<act>.onnx`` + ``<act>.json`` (the chosen
    rate's first seed) to ``export.out``; runs already saved there are skipped. ``placement``: train as Ray
    tasks. Failed runs are returned, not raised (``Trained.check()`` raises them)."""
    stage = TrainingStage(_activations(acts), train, sweep, recipe, export, placement, baseline, reporter)
    stage.check()
    return stage.run(data if isinstance(data, MNIST) else load(data, log=reporter.say))


def profile(
    models: Path = Path("models"),
    *,
    settings: ProfileSettings = ProfileSettings(),
    names: Sequence[str] | None = None,
    baseline: str = "relu",
    data: DataSource | MNIST = DataSource(),
    out: Path = Path("reports"),
    remote: RemoteProfile | None = None,
    skip_unbound: bool = False,
    reporter: Reporter = QUIET,
) -> ProfileRecord:
    """Time every model in ``models`` (or the ``names`` given) on every provider × precision × batch of
    ``settings``: latency from interleaved rounds with CIs, accuracy and memory per deployment cell, per-op
    time, fusion census and the ablation; writes ``out/profile.json`` and the derived models. A provider that
    does not bind here is refused (``skip_unbound``: skipped and said, as ``--provider all`` does).
    ``remote``: measure on the Ray node offering that resource."""
    from actprof.measure.providers import resolve
    from actprof.pipeline.profiling import check_remote, profile_models

    activations.get(baseline)
    listed = [a.name for a in _activations(list(names))] if names else None
    settings = resolve(settings, skip_unbound=skip_unbound, say=reporter.say)
    check_remote(remote)
    mnist = data if isinstance(data, MNIST) else load(data, log=reporter.say)
    return profile_models(
        models, listed, settings, baseline=baseline, out=out, mnist=mnist, remote=remote, reporter=reporter
    )


def profile_versions(
    models: Path = Path("models"),
    runtime_versions: str | Sequence[RuntimePin] = "onnxruntime==1.20.1,onnxruntime",
    *,
    settings: ProfileSettings = ProfileSettings(),
    names: Sequence[str] | None = None,
    baseline: str = "relu",
    out: Path = Path("reports"),
    reporter: Reporter = QUIET,
) -> ProfiledVersions:
    """Time the models under several builds of one runtime side by side (``runtime_versions``, as
    ``--runtime-versions`` takes them: ``onnxruntime==1.20.1,onnxruntime``), each build in a worker process
    and an environment of its own (installed once, then cached); writes ``out/versions.json`` and
    ``out/versions.md``."""
    from actprof.pipeline.versions import profile_versions as stage
    from actprof.pipeline.versions import versions_settings
    from actprof.settings.versions import parse_runtime_versions

    activations.get(baseline)
    pins = parse_runtime_versions(runtime_versions) if isinstance(runtime_versions, str) else list(runtime_versions)
    listed = [a.name for a in _activations(list(names))] if names else None
    chosen = versions_settings(settings, pins)
    record, written = stage(models, listed, pins, chosen, baseline=baseline, out=out, reporter=reporter)
    return ProfiledVersions(record, written)


def report(
    models: Path = Path("models"),
    results: Path = Path("reports"),
    *,
    baseline: str = "relu",
    target: float | None = None,
    formats: Sequence[str] = ("md", "html", "json", "csv"),
    out: Path | None = None,
    highlight: Sequence[str] | None = None,
    train_stack: str | None = None,
    reporter: Reporter = QUIET,
) -> Report:
    """The trade-off per activation and deployment — the verdict, the break-even, every table — built from
    the models in ``models`` and the profile and step times in ``results``; writes ``report.*`` in
    ``formats`` to ``out`` (default: ``results``). ``target``: a validation accuracy in (0, 1] (None: the
    highest whole percent the baseline reached in every seed). ``train_stack``: the stack the training seconds
    are priced on (None: eager where its step time was measured, else the runs' own clock)."""
    from actprof.errors import UsageError
    from actprof.pipeline.reporting import report as build

    if target is not None and not 0 < target <= 1:
        raise UsageError(f"--target must be a validation accuracy in % (0-100], got {100 * target:g}")
    shown = [a.name for a in _activations(list(highlight))] if highlight else None
    if train_stack:
        one_of(train_stack, TRAIN_STACKS, "--train-stack")
    return build(
        models,
        results,
        baseline=baseline,
        target=target,
        formats=formats,
        out=out,
        highlight=shown,
        train_stack=train_stack,
        reporter=reporter,
    )


def step_time(
    models: Path = Path("models"),
    *,
    stacks: Sequence[str] = DEFAULT_STACKS,
    names: Sequence[str] | None = None,
    baseline: str = "relu",
    data: DataSource | MNIST = DataSource(),
    out: Path = Path("reports"),
    reporter: Reporter = QUIET,
) -> StepCostRecord:
    """The training step of every model in ``models`` (or the ``names`` given) on each of ``stacks`` (eager:
    the network as a user writes it; compile: through torch.compile; actprof: the fast trainer), timed side by
    side at the runs' batch, precision and device; writes ``out/steps.json``, which prices the report's
    training seconds."""
    from actprof.pipeline.steps import time_steps

    activations.get(baseline)
    check_stacks(stacks, TrainConfig())
    listed = [a.name for a in _activations(list(names))] if names else None
    mnist = data if isinstance(data, MNIST) else load(data, log=reporter.say)
    return time_steps(models, listed, stacks, baseline=baseline, out=out, mnist=mnist, reporter=reporter)


@dataclass(frozen=True)
class RunResult:
    trained: Trained
    profile: ProfileRecord
    report: Report
    stages: dict[str, float] = field(default_factory=dict)  # seconds each stage took


def run(
    acts: Activations = "all",
    *,
    train: TrainConfig = TrainConfig(),
    sweep: Sweep | None = None,
    recipe: Recipe = Recipe(),
    export: ExportOptions = ExportOptions(),
    settings: ProfileSettings = RUN_PROFILE,
    data: DataSource = DataSource(),
    placement: Placement | None = None,
    remote: RemoteProfile | None = None,
    baseline: str = "relu",
    out: Path = Path("reports"),
    highlight: Sequence[str] | None = None,
    skip_unbound: bool = False,
    train_stack: str = "eager",
    stacks: Sequence[str] = DEFAULT_STACKS,
    reporter: Reporter = QUIET,
) -> RunResult:
    """train-export → the training step on each of ``stacks`` → profile → report, the baseline trained too;
    the verdicts' training seconds are priced on ``train_stack`` (timed too if ``stacks`` lacks it). Where
    anything can be refused (providers, precisions, stacks, a Ray cluster, a GPU) it is, before the data
    loads. The report covers what finished; runs that failed are in ``RunResult.trained.failures``
    (``.check()`` raises them)."""
    from actprof.measure.providers import resolve
    from actprof.pipeline.profiling import check_remote, profile_models
    from actprof.pipeline.steps import time_steps

    rows = _activations(acts)
    if baseline not in {a.name for a in rows}:
        rows = [activations.get(baseline), *rows]
    stage = TrainingStage(rows, train, sweep, recipe, export, placement, baseline, reporter)
    stage.check()
    stacks = list(dict.fromkeys([*stacks, train_stack]))
    check_stacks(stacks, train)
    settings = resolve(settings, skip_unbound=skip_unbound, say=reporter.say)
    check_remote(remote)
    stages: dict[str, float] = {}
    started = time.perf_counter()
    mnist = load(data, log=reporter.say)  # once, for both stages
    trained = stage.run(mnist)
    stages["train + export"] = time.perf_counter() - started
    names = [r.name for r in trained.records]
    if trained.failures and baseline not in names:  # nothing to judge against: stop here
        trained.check()
    started = time.perf_counter()
    time_steps(export.out, names, stacks, baseline=baseline, out=out, mnist=mnist, reporter=reporter)
    stages["training step"] = time.perf_counter() - started
    started = time.perf_counter()
    record = profile_models(
        export.out, names, settings, baseline=baseline, out=out, mnist=mnist, remote=remote, reporter=reporter
    )
    stages["profile"] = time.perf_counter() - started
    started = time.perf_counter()
    built = report(export.out, out, baseline=baseline, highlight=highlight, train_stack=train_stack, reporter=reporter)
    stages["report"] = time.perf_counter() - started
    return RunResult(trained, record, built, stages)


def microbench(
    acts: Activations = "all",
    *,
    settings: MicrobenchSettings = MicrobenchSettings(),
    skip_unbound: bool = False,
    reporter: Reporter = QUIET,
) -> MicrobenchRecord:
    """Each activation as one ONNX op over a cache-sized and a DRAM-sized tensor: GB/s and the fraction of a
    copy's bandwidth, per provider (``skip_unbound``: those that bind, as ``--provider all`` does)."""
    from actprof.measure.microbench import measure, merge
    from actprof.measure.providers import bound, fix_threads

    rows = _activations(acts)
    fix_threads(settings.threads)
    providers = bound(settings.providers, skip_unbound=skip_unbound, say=reporter.say)
    with reporter.working("microbenchmark") as status:
        records = [
            measure(rows, provider=name, sizes=settings.sizes, min_time=settings.min_time, on_progress=status)
            for name in providers
        ]
    return merge(records)


def reproduce(
    name: str,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int | None = None,
    data: DataSource | MNIST = DataSource(),
    models: Path = Path("models/reproduce"),
    out: Path = Path("reports/reproduce"),
    force: bool = False,
    reporter: Reporter = QUIET,
) -> Reproduction:
    """Run the published experiment ``name`` (``settings.literature.EXPERIMENTS``) over ``seeds``, at its
    published epochs unless ``epochs`` is given, through train → export → parity (runs kept in
    ``models/<name>``; the same call resumes), and write ``out/<name>/reproduction.{json,md}``: the published
    numbers beside actprof's, with intervals over seeds."""
    from actprof.pipeline.reproduce import Plan
    from actprof.pipeline.reproduce import run as run_experiment
    from actprof.report.reproduction import write
    from actprof.settings.literature import EXPERIMENTS

    one_of(name, tuple(EXPERIMENTS), "experiment")
    experiment = EXPERIMENTS[name]
    plan = Plan(experiment, tuple(seeds), experiment.epochs if epochs is None else epochs, models / name, force=force)
    mnist = data if isinstance(data, MNIST) else load(data, log=reporter.say)
    record = run_experiment(plan, mnist, reporter=reporter)
    return Reproduction(record, write(record, out / name))
