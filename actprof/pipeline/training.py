"""The training stage: every (activation, learning rate, seed) job not already saved, on the launcher chosen,
then one model per activation (its chosen rate's first seed as ``<act>.onnx``, and its exact rewrite)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from actprof.activations import Activation
from actprof.data.mnist import MNIST, to_tensor
from actprof.errors import ActprofError, SweepFailed
from actprof.export.config import ExportOptions
from actprof.export.rewrite import rewrite_pool_first, rewritten_record
from actprof.launchers.config import Placement
from actprof.pipeline.progress import QUIET, Reporter, StepCallback
from actprof.schema.storage import save_model
from actprof.schema.training import ModelConfig, ModelRecord, TrainJob
from actprof.settings.training import TrainConfig
from actprof.training import sweep
from actprof.training.config import Recipe, Sweep


@dataclass(frozen=True)
class Trained:
    """What a training stage produced: a model per activation whose runs finished, and the runs that failed
    (the finished ones are saved, and the same call again resumes)."""

    records: list[ModelRecord]
    failures: list[sweep.Failure]
    runs_dir: Path
    resumed: int = 0  # runs found saved and unchanged (diverged ones included), not trained again

    def check(self) -> None:
        """SweepFailed (exit 1) naming the failed runs, when there are any."""
        if not self.failures:
            return
        shown = "; ".join(str(f) for f in self.failures[:3])
        more = f"; and {len(self.failures) - 3} more" if len(self.failures) > 3 else ""
        raise SweepFailed(
            f"{len(self.failures)} training(s) failed ({shown}{more}); the finished ones are saved in "
            f"{self.runs_dir} and the same command resumes (diverged runs stay recorded as such: "
            "drop that rate, or lower it, or --force)"
        )


def train_sweep(
    models: Sequence[tuple[Activation, ModelConfig]],
    train_config: TrainConfig,
    data: MNIST,
    options: ExportOptions,
    plan: Sweep,
    *,
    baseline: str | None,
    placement: Placement | None = None,
    reporter: Reporter = QUIET,
) -> Trained:
    """Every (activation, learning rate, seed) training not already saved, then one model record per
    activation whose runs finished.

    ``baseline``: the activation the others are judged against gets no rewrite (the rewrite applies only
    where it is exact, and not to the baseline). ``placement``: train on a Ray cluster (None: here, one
    run after another)."""
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
        reporter.say(
            f"resumed: {finished_before} of {finished_before + len(todo)} trainings already in {runs_dir}, "
            f"unchanged ({len(diverged)} of them diverged; --force retrains them)"
        )
    with reporter.training([act.name for act, _ in models]) as progress:
        trained, failures = _launch(todo, jobs, plan, data, runs_dir, placement, progress)
    failures = [*diverged, *failures]
    results = {**done, **trained}
    records = []
    for act, _ in models:
        finished = [results[j.stem] for j in jobs[act.name] if j.stem in results]
        try:
            onnx_bytes, record = sweep.assemble(act, finished, plan.lrs, len(plan.seeds))
        except ActprofError:
            if any(f.job.model.activation == act.name for f in failures):  # its failures are reported already
                continue
            raise
        rewrite = options.rewrite if act.monotonic and act.name != baseline else "none"
        records.append(_save_model(act, onnx_bytes, record, options.out, rewrite, data))
    return Trained(records, failures, runs_dir, resumed=len(done) + len(diverged))


def _launch(
    todo: list[TrainJob],
    jobs: dict[str, list[TrainJob]],
    plan: Sweep,
    data: MNIST,
    runs_dir: Path,
    placement: Placement | None,
    progress: Callable[[str], StepCallback | None],
) -> tuple[dict[str, sweep.Saved], list[sweep.Failure]]:
    """The jobs on their launcher; ``progress(act)`` gets the activation's steps over all its runs (locally)
    or its finished runs (on Ray, where steps are not reported back)."""
    if placement is None:
        from actprof.launchers.local import run_local

        def job_progress(job: TrainJob) -> StepCallback | None:
            on_step = progress(job.model.activation)
            if on_step is None:
                return None
            index, count = jobs[job.model.activation].index(job), plan.trainings_per_activation
            return lambda step, total: on_step(index * total + step, count * total)

        return run_local(todo, data, runs_dir, on_step=job_progress)
    from actprof.launchers.ray import run_ray

    finished = dict.fromkeys(jobs, 0)

    def one_more(job: TrainJob) -> None:
        finished[job.model.activation] += 1
        on_step = progress(job.model.activation)
        if on_step is not None:
            on_step(finished[job.model.activation], plan.trainings_per_activation)

    return run_ray(todo, data, runs_dir, placement, on_done=one_more)


def _save_model(act: Activation, onnx_bytes: bytes, record: ModelRecord, out: Path, rewrite: str, data: MNIST):
    """Write ``<act>.onnx`` + ``.json`` (and the rewrite's pair); the rewrite is verified before anything."""
    rewritten = None
    if rewrite != "none":
        data_rw, parity, _ = rewrite_pool_first(onnx_bytes, to_tensor(data.test_images).numpy())
        rewritten = (data_rw, rewritten_record(record, data_rw, parity, rewrite))
    save_model(out, act.name, onnx_bytes, record)
    if rewritten:
        save_model(out, f"{act.name}+{rewrite}", *rewritten)
    return record


@dataclass(frozen=True)
class TrainingStage:
    """A training stage as the API was asked for it: what is checked before any data loads, then what runs."""

    rows: list[Activation]
    train: TrainConfig
    sweep: Sweep | None
    recipe: Recipe
    export: ExportOptions
    placement: Placement | None
    baseline: str | None
    reporter: Reporter

    def check(self) -> None:
        """Everything about the stage that can be refused, refused before any data loads."""
        from actprof.export.rewrite import check_rewrite
        from actprof.pipeline.profiling import check_placement
        from actprof.training.model import check_recipe

        check_recipe(self.rows, self.recipe)
        self._check_exports()
        judged = [a for a in self.rows if a.name != self.baseline] or self.rows
        skipped = check_rewrite(self.export.rewrite, judged)
        if skipped:
            self.reporter.say(
                f"{self.export.rewrite}: skipped {', '.join(skipped)} (not monotonic non-decreasing: the rewrite "
                "would not be exact)"
            )
        if self.placement is None:  # a Ray task asks the cluster for its GPU instead
            from actprof.training.loop import resolve_device

            resolve_device(self.train.device)
        check_placement(self.placement)

    def _check_exports(self) -> None:
        """A user's network is built (their file, function and shapes checked) and exported once untrained, so
        one that fails either way is refused before the data loads."""
        from actprof.export.exporter import to_onnx
        from actprof.settings.networks import NetworkSpec
        from actprof.training.model import build, config_for

        if self.rows and NetworkSpec.parse(self.recipe.architecture).kind == "file":
            network = build(config_for(self.rows[0], self.recipe))
            to_onnx(network, opset=self.export.opset, exporter=self.export.exporter)

    def run(self, mnist: MNIST) -> Trained:
        from actprof.training.model import config_for

        models = [(act, config_for(act, self.recipe)) for act in self.rows]
        plan = self.sweep or Sweep.of(self.train)
        trained = train_sweep(
            models,
            self.train,
            mnist,
            self.export,
            plan,
            baseline=self.baseline,
            placement=self.placement,
            reporter=self.reporter,
        )
        self.reporter.trained(trained.records)
        return trained
