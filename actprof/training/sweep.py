"""The training sweep: activation × network × learning rate × seed, one job per training.

Where the jobs run is a launcher's business (``launchers.local``, ``launchers.ray``); this module says what a
job is, runs one, and keeps its files.

A job trains, exports to ONNX and proves parity, and leaves ``<models>/runs/<stem>.onnx`` and
``<stem>.json`` (a ``RunRecord``). Running a sweep again skips every job whose files exist and match — the
job as requested, the data's hash, actprof's and the packages' versions — so an interrupted or partly
failed sweep continues where it stopped; ``force`` retrains. Per activation, the learning rate is chosen on
the validation split (never the test set), and the chosen rate's first seed becomes ``<act>.onnx``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from actprof import activations
from actprof.errors import ActprofError, ModelFileError, UsageError
from actprof.schema.storage import header, read_json, sha256, write_bytes_atomic, write_json
from actprof.schema.training import ActivationInfo, DivergedRun, LrChoice, LrScore, ModelRecord, RunRecord, TrainJob
from actprof.settings.networks import BUILT_IN, NetworkSpec
from actprof.settings.training import ModelConfig, TrainConfig

if TYPE_CHECKING:
    from actprof.data.mnist import MNIST
    from actprof.schema.environment import Environment
    from actprof.schema.training import DatasetIdentity

RUNS_DIR = "runs"
LR_RULE = (
    "the highest mean final validation accuracy over seeds (validation split, never the test set); "
    "a rate where any seed failed is not eligible; ties go to the smaller rate"
)

StepCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Failure:
    """A job that did not finish, and why (one line). A diverged job is saved and not trained again on
    resume; any other failure (a worker or node lost) is trained again."""

    job: TrainJob
    reason: str
    diverged: bool = False

    def __str__(self) -> str:
        return f"{describe(self.job)}: {self.reason}"


def network_name(spec: str) -> str:
    return f"{spec} CNN" if spec in BUILT_IN else spec


def describe(job: TrainJob) -> str:
    """A job in words for progress lines and failures: ``elu, deep CNN, lr 0.003, seed 1``."""
    return f"{job.model.activation}, {network_name(job.model.architecture)}, lr {job.train.lr:g}, seed {job.train.seed}"


def jobs(
    model: ModelConfig, train: TrainConfig, *, lrs: Sequence[float], seeds: Sequence[int], opset: int, exporter: str
) -> list[TrainJob]:
    """Every (learning rate, seed) training of one activation on one network, learning rate outermost."""
    return [TrainJob(model, replace(train, lr=lr, seed=seed), opset, exporter) for lr in lrs for seed in seeds]


def run_job(job: TrainJob, data: MNIST, *, on_step: StepCallback | None = None) -> tuple[bytes, RunRecord]:
    """Train, export and prove parity; nothing is written here. Raises ActprofError (diverged, parity)."""
    from actprof.data.mnist import to_tensor
    from actprof.export.verify import export_and_verify
    from actprof.training.loop import train

    try:
        model, result = train(job.model, job.train, data, on_step=on_step)
    except ActprofError:
        raise
    except Exception as error:  # a user's network failing in training: their code, one line (not for actprof's own)
        if NetworkSpec.parse(job.model.architecture).kind != "file":
            raise
        raise UsageError(
            f"--model {job.model.architecture}: the network failed in training: {type(error).__name__}: {error}"
        ) from None
    onnx_bytes, exported = export_and_verify(
        model,
        expected_ops=activations.get(job.model.activation).onnx_ops,
        test_images=to_tensor(data.test_images).numpy(),
        test_labels=data.test_labels,
        opset=job.opset,
        exporter=job.exporter,
    )
    record = RunRecord(
        **header("run"),
        job=job,
        dataset=data.identity,
        train=result,
        export=replace(exported, file=f"{job.stem}.onnx"),
    )
    return onnx_bytes, record


def save_run(runs_dir: Path, onnx_bytes: bytes, record: RunRecord) -> None:
    write_bytes_atomic(runs_dir / f"{record.job.stem}.onnx", onnx_bytes)
    write_json(runs_dir / f"{record.job.stem}.json", record)


def save_diverged(runs_dir: Path, job: TrainJob, dataset: DatasetIdentity, reason: str) -> Failure:
    """Record a diverged training (no ONNX file; a stale one is removed) and return its failure."""
    (runs_dir / f"{job.stem}.onnx").unlink(missing_ok=True)
    record = DivergedRun(**header("diverged"), job=job, dataset=dataset, reason=reason)
    write_json(runs_dir / f"{job.stem}.json", record)
    return Failure(job, reason, diverged=True)


Saved = tuple[bytes, RunRecord]


def finished(runs_dir: Path, job: TrainJob, dataset: DatasetIdentity, now: Environment) -> Saved | Failure | None:
    """The saved result of ``job`` (or its saved divergence) if it matches what would be trained now —
    the job, the data's hash, actprof's and the packages' versions (``now``); None means train it."""
    json_path = runs_dir / f"{job.stem}.json"
    try:
        kind = json.loads(json_path.read_bytes()).get("kind")
        record = read_json(json_path, DivergedRun if kind == "diverged" else RunRecord)
    except (OSError, ValueError, AttributeError, ModelFileError):  # missing, damaged, incompatible: train it
        return None
    same = (
        record.job == job
        and record.dataset.sha256 == dataset.sha256
        and record.environment.actprof == now.actprof
        and record.environment.versions == now.versions
    )
    if not same:
        return None
    if isinstance(record, DivergedRun):
        return Failure(job, record.reason, diverged=True)
    onnx_path = runs_dir / f"{job.stem}.onnx"
    onnx_bytes = onnx_path.read_bytes() if onnx_path.is_file() else b""
    return (onnx_bytes, record) if sha256(onnx_bytes) == record.export.sha256 else None


def pending(
    all_jobs: Sequence[TrainJob], runs_dir: Path, dataset: DatasetIdentity, *, force: bool
) -> tuple[dict[str, Saved], list[Failure], list[TrainJob]]:
    """Split a sweep into the results already on disk (by stem), the saved divergences, and the jobs
    still to train."""
    from actprof.schema import environment

    now = environment.capture()
    done: dict[str, Saved] = {}
    diverged, todo = [], []
    for job in all_jobs:
        saved = None if force else finished(runs_dir, job, dataset, now)
        if saved is None:
            todo.append(job)
        elif isinstance(saved, Failure):
            diverged.append(saved)
        else:
            done[job.stem] = saved
    return done, diverged, todo


def choose_lr(runs: Sequence[RunRecord], expected_seeds: int) -> LrChoice:
    """The learning rate with the highest mean final validation accuracy over seeds, among the rates
    where every seed finished. Raises ActprofError when no rate is eligible."""
    by_lr: dict[float, list[float]] = {}
    for run in runs:
        by_lr.setdefault(run.job.train.lr, []).append(run.train.val_accuracy)
    scores = [LrScore(lr, sum(accs) / len(accs), min(accs), max(accs), len(accs)) for lr, accs in sorted(by_lr.items())]
    eligible = [s for s in scores if s.seeds == expected_seeds and math.isfinite(s.val_accuracy)]
    if not eligible:
        raise ActprofError("no learning rate finished every seed; see the failures above")
    best = max(eligible, key=lambda s: (s.val_accuracy, -s.lr))
    return LrChoice(rule=LR_RULE, scores=scores, chosen=best.lr)


def assemble(
    act: activations.Activation, results: Sequence[tuple[bytes, RunRecord]], lrs: Sequence[float], seeds: int
) -> tuple[bytes, ModelRecord]:
    """One activation's model record from its finished runs: the chosen rate's runs, the others as the sweep,
    and the chosen rate's first seed as the exported model."""
    records = [r for _, r in results]
    choice = choose_lr(records, seeds) if len(lrs) > 1 else None
    chosen = choice.chosen if choice else lrs[0]
    at_chosen = [(b, r) for b, r in results if r.job.train.lr == chosen]
    if len(at_chosen) < seeds:
        raise ActprofError(f"{act.name}: not every seed finished at lr {chosen:g}; see the failures above")
    onnx_bytes, first = at_chosen[0]
    model = first.job.model
    record = ModelRecord(
        **header("model"),
        activation=ActivationInfo(
            name=act.name,
            summary=act.summary,
            param_name=act.param,
            param=model.param,
            init=model.init,
            monotonic=act.monotonic,
            alpha_dropout=model.alpha_dropout,
        ),
        dataset=first.dataset,
        train=first.train,
        export=replace(first.export, file=f"{act.name}.onnx"),
        seed_runs=[r.train for _, r in at_chosen[1:]],
        sweep_runs=[r.train for r in records if r.job.train.lr != chosen],
        lr_choice=choice,
    )
    return onnx_bytes, record
