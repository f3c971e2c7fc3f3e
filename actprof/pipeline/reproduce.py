"""``actprof reproduce``: a published experiment's recipe trained over seeds through the same train → export →
parity path as every run, then its numbers put beside the published ones (``analysis.reproduction``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from actprof import activations
from actprof.analysis import reproduction
from actprof.data.mnist import MNIST, validation_split
from actprof.export.config import ExportOptions
from actprof.pipeline.progress import QUIET, Reporter
from actprof.pipeline.training import TrainingStage
from actprof.schema.reproduction import ReproductionRecord
from actprof.schema.storage import header
from actprof.schema.training import TrainResult
from actprof.settings.literature import Arm, Cell, Experiment
from actprof.settings.networks import NetworkSpec
from actprof.settings.parse import require
from actprof.settings.training import TrainConfig, optimizer_words
from actprof.training.config import Recipe, Sweep


@dataclass(frozen=True)
class Plan:
    """An experiment as it will run here: its seeds, its epochs (the published ones unless overridden) and
    where the trainings go."""

    experiment: Experiment
    seeds: tuple[int, ...]
    epochs: int
    models: Path
    force: bool = False

    def __post_init__(self) -> None:
        require(self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}")
        Sweep(lrs=(self.experiment.lr,), seeds=self.seeds)  # checks the seeds

    def recipe(self, cell: Cell, arm: Arm) -> Recipe:
        alpha = activations.get(arm.activation).alpha_dropout
        e = self.experiment
        return Recipe(
            architecture=cell.model,
            dropout=None if alpha else e.dropout,
            alpha_dropout=e.alpha_dropout if alpha else None,
            param=arm.param,
            init=arm.init,
            batch_norm=e.batch_norm,
            standardize=e.standardize,
        )

    def train_config(self, data: MNIST) -> TrainConfig:
        """The recipe's training, with a validation point at every epoch's end on the whole validation split
        (the sources report per-epoch numbers), in fp32 as the sources trained."""
        e = self.experiment
        train_idx, val_idx = validation_split(len(data.train_labels), fraction=e.val_fraction)
        steps_per_epoch = -(-len(train_idx) // e.batch_size)
        return TrainConfig(
            epochs=self.epochs,
            batch_size=e.batch_size,
            lr=e.lr,
            seed=self.seeds[0],
            val_fraction=e.val_fraction,
            val_every=steps_per_epoch,
            val_size=len(val_idx),
            precision="fp32",
            optimizer=e.optimizer,
            momentum=e.momentum,
        )

    def models_dir(self, cell: Cell) -> Path:
        """Where a network's runs are kept: a shortened run (--epochs) apart from the published length's."""
        shortened = "" if self.epochs == self.experiment.epochs else f"-{self.epochs}ep"
        return self.models / (NetworkSpec.parse(cell.model).slug + shortened)


def recipe_words(experiment: Experiment, train: TrainConfig) -> str:
    e = experiment
    parts = [
        optimizer_words(train) + f" lr {e.lr:g}",
        f"batch {e.batch_size}",
        f"{train.epochs} epoch{'' if train.epochs == 1 else 's'}"
        + ("" if train.epochs == e.epochs else f" (published: {e.epochs})"),
        f"dropout {e.dropout:g}" + (f" (alpha dropout {e.alpha_dropout:g} for SELU)" if _has_selu(e) else ""),
        "inits " + ", ".join(f"{a.label} {a.init}" for a in e.arms),
    ]
    if e.batch_norm:
        parts.append("batch norm")
    if e.standardize:
        parts.append("standardized pixels")
    return "; ".join(parts) + "; fp32"


def _has_selu(experiment: Experiment) -> bool:
    return any(activations.get(a.activation).alpha_dropout for a in experiment.arms)


def run(plan: Plan, data: MNIST, *, reporter: Reporter = QUIET) -> ReproductionRecord:
    """Train every network × activation × seed of the experiment (resuming what is saved in ``plan.models``),
    and compare."""
    started = time.perf_counter()
    experiment = plan.experiment
    train = plan.train_config(data)
    sweep = Sweep(lrs=(train.lr,), seeds=plan.seeds, force=plan.force)
    runs: dict[tuple[str, str], list[TrainResult]] = {}
    networks: dict[str, str] = {}
    failures: list[str] = []
    resumed = 0
    for cell in experiment.cells:
        for arm in experiment.arms:
            reporter.say(f"{experiment.name}: {cell.label}, {arm.label}, {len(plan.seeds)} seed(s)")
            stage = TrainingStage(
                [activations.get(arm.activation)],
                train,
                sweep,
                plan.recipe(cell, arm),
                ExportOptions(out=plan.models_dir(cell)),
                placement=None,
                baseline=None,
                reporter=reporter,
            )
            stage.check()
            trained = stage.run(data)
            resumed += trained.resumed
            failures += [str(f) for f in trained.failures]  # a diverged seed is a result: reported, not fatal
            if not trained.records:
                continue
            record = trained.records[0]
            runs[(cell.label, arm.activation)] = record.runs
            if record.train.network:
                networks[cell.label] = f"{cell.label}: {record.train.network.summary}"
    return ReproductionRecord(
        **header("reproduction"),
        experiment=experiment.name,
        title=experiment.title,
        source=experiment.source,
        claim=experiment.claim,
        recipe=recipe_words(experiment, train),
        networks=list(networks.values()),
        seeds=list(plan.seeds),
        epochs=train.epochs,
        published_epochs=experiment.epochs,
        dataset=f"MNIST {data.identity.kind} ({data.identity.n_train:,} train / {data.identity.n_test:,} test)",
        values=reproduction.values(experiment, runs),
        contrasts=reproduction.contrasts(experiment, runs),
        differences=list(experiment.differences),
        wall_seconds=time.perf_counter() - started,
        training_seconds=sum(r.train_seconds for rs in runs.values() for r in rs),
        resumed=resumed,
        failures=failures,
    )
