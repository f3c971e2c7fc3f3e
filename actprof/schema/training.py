"""Records of the training stage: a run as trained, exported and proven at parity; a model per activation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from actprof.schema.environment import Environment
from actprof.schema.steps import StackIdentity
from actprof.settings.networks import NetworkSpec
from actprof.settings.training import ModelConfig, TrainConfig

TARGETS = (0.90, 0.95, 0.97, 0.98, 0.99)  # validation accuracies whose time-to-reach is recorded


@dataclass(frozen=True)
class DatasetIdentity:
    kind: str  # "full" or "sample"
    source: str  # "data-dir" | "env" | "cache" | "download" | "sample"
    location: str
    n_train: int
    n_test: int
    train_label_counts: list[int]
    test_label_counts: list[int]
    sha256: str


@dataclass(frozen=True)
class ValPoint:
    step: int
    epoch: float
    train_seconds: float  # cumulative, training only (validation time excluded)
    val_loss: float
    val_accuracy: float
    grad_norms: dict[str, float]  # per weight layer, at this step


@dataclass(frozen=True)
class TimeToAccuracy:
    """When a run first reached ``target`` validation accuracy, interpolated linearly between the two
    validation points around the crossing; the bracket's width is the resolution of that estimate.
    (Records before schema 3 hold the first point at or above the target, with no resolution.)"""

    target: float
    step: float | None  # None: never reached in this run
    seconds: float | None
    resolution_steps: float | None = None  # width of the bracket the crossing lies in
    resolution_seconds: float | None = None


def time_to(validation: list[ValPoint], target: float) -> TimeToAccuracy:
    """Read off a recorded curve (any target works): the first crossing of ``target``, interpolated."""
    index = next((i for i, p in enumerate(validation) if p.val_accuracy >= target), None)
    if index is None:
        return TimeToAccuracy(target, None, None)
    hit = validation[index]
    if index == 0:  # reached at the first point recorded: somewhere since the start (exact only at step 0)
        return TimeToAccuracy(target, hit.step, hit.train_seconds, float(hit.step), hit.train_seconds)
    before = validation[index - 1]
    share = (target - before.val_accuracy) / (hit.val_accuracy - before.val_accuracy)
    return TimeToAccuracy(
        target,
        step=before.step + share * (hit.step - before.step),
        seconds=before.train_seconds + share * (hit.train_seconds - before.train_seconds),
        resolution_steps=float(hit.step - before.step),
        resolution_seconds=hit.train_seconds - before.train_seconds,
    )


def reached(points: list[TimeToAccuracy], target: float) -> TimeToAccuracy | None:
    """The entry for ``target`` in a time-to-accuracy list (None when that target was not recorded)."""
    return next((t for t in points if math.isclose(t.target, target)), None)


@dataclass(frozen=True)
class LayerStats:
    layer: str
    units: int
    mean_activation: float
    dead_fraction: float  # units never positive over the validation batch


@dataclass(frozen=True)
class NetworkInfo:
    """The network a run trained, as built: what every record and report names it by."""

    spec: str  # the --model spec (settings.networks)
    words: str  # the spec in words
    parameters: int  # trainable parameters
    activation_sites: int  # activation modules the network holds

    @property
    def summary(self) -> str:
        return f"{self.words}, {self.parameters:,} parameters"


@dataclass(frozen=True)
class TrainResult:
    config: TrainConfig
    model: ModelConfig
    steps: int
    images: int
    train_seconds: float
    images_per_second: float
    step_loss: list[float]
    step_accuracy: list[float]
    validation: list[ValPoint]
    time_to_accuracy: list[TimeToAccuracy]
    val_loss: float
    val_accuracy: float
    test_loss: float
    test_accuracy: float
    layer_stats: list[LayerStats]
    threads: int
    extra: dict[str, float] = field(default_factory=dict)
    device_name: str = ""  # the CPU model or GPU name training ran on
    executor: str = "local"  # "local", or "ray (2 of 2 CPUs)": where the run trained and what it reserved
    # True when the run shared its node's cores with other trainings: its seconds are not comparable
    contended: bool = False
    # Which of the fast trainer's speed-ups ran (None: a record from before they were recorded). Its seconds
    # are a property of these; runs trained with different ones have seconds that are not comparable.
    trainer: StackIdentity | None = None
    network: NetworkInfo | None = None  # None: a record from before networks were recorded (seed or deep)


@dataclass(frozen=True)
class Parity:
    images: int
    max_abs_diff: float
    argmax_agree: bool
    tolerance: float


@dataclass(frozen=True)
class ExportResult:
    exporter: str
    opset: int
    file: str
    sha256: str
    size_bytes: int
    export_seconds: float
    census: dict[str, int]  # op type -> node count, whole graph
    activation_census: dict[str, int]  # the non-structural part: what the activation exported to
    expected_ops: list[str]
    decomposed: bool  # more than one node per activation site, or not the expected op
    parity: Parity
    onnx_test_accuracy: float  # the ONNX file run in ONNX Runtime on the whole test set
    onnx_test_images: int


@dataclass(frozen=True)
class ActivationInfo:
    name: str
    summary: str
    param_name: str | None
    param: float | None
    init: str
    monotonic: bool
    alpha_dropout: bool


@dataclass(frozen=True)
class TrainJob:
    """One training of a sweep, as requested: (activation, network, learning rate, seed) and the rest of
    the recipe. A sweep is resumed by comparing these (with the data hash and package versions)."""

    model: ModelConfig
    train: TrainConfig
    opset: int
    exporter: str

    @property
    def stem(self) -> str:
        """The file name of this training's run files: ``elu-seed-lr0.001-s0`` (every digit of the rate)."""
        network = NetworkSpec.parse(self.model.architecture).slug
        return f"{self.model.activation}-{network}-lr{self.train.lr!r}-s{self.train.seed}"


@dataclass(frozen=True)
class RunRecord:
    """One finished training: trained, exported to ONNX and proven at parity (``runs/<stem>.json``)."""

    schema_version: int
    kind: str  # "run"
    created: str
    environment: Environment
    job: TrainJob
    dataset: DatasetIdentity
    train: TrainResult
    export: ExportResult


@dataclass(frozen=True)
class DivergedRun:
    """A training whose loss became NaN/inf (``runs/<stem>.json``, no ONNX): deterministic for its job, so a
    resumed sweep does not train it again (``--force`` does)."""

    schema_version: int
    kind: str  # "diverged"
    created: str
    environment: Environment
    job: TrainJob
    dataset: DatasetIdentity
    reason: str


@dataclass(frozen=True)
class LrScore:
    lr: float
    val_accuracy: float  # mean over seeds of the final validation accuracy (validation split, never test)
    low: float  # the lowest and highest seed
    high: float
    seeds: int


@dataclass(frozen=True)
class LrChoice:
    """How an activation's learning rate was chosen: the candidates' validation scores and the winner."""

    rule: str
    scores: list[LrScore]
    chosen: float


@dataclass(frozen=True)
class ModelRecord:
    schema_version: int
    kind: str  # "model"
    created: str
    activation: ActivationInfo
    dataset: DatasetIdentity
    environment: Environment
    train: TrainResult
    export: ExportResult
    rewrite: str | None = None  # "pool-first": the exact rewrite of the exported graph
    seed_runs: list[TrainResult] = field(default_factory=list)  # more seeds, trained the same way (--seeds)
    # A learning-rate sweep (--lr with several values): the runs at the rates not chosen, and the choice.
    # ``train`` and ``seed_runs`` are then the runs at the chosen rate.
    sweep_runs: list[TrainResult] = field(default_factory=list)
    lr_choice: LrChoice | None = None

    @property
    def name(self) -> str:
        """The activation, plus the rewrite applied to its graph: how profiles and reports name a model."""
        return self.activation.name + (f"+{self.rewrite}" if self.rewrite else "")

    @property
    def runs(self) -> list[TrainResult]:
        """The runs at the chosen learning rate (every seed), the exported seed first."""
        return [self.train, *self.seed_runs]

    @property
    def all_runs(self) -> list[TrainResult]:
        """Every training of this activation: every learning rate, every seed."""
        return [*self.runs, *self.sweep_runs]

    @property
    def architecture(self) -> str:
        return self.train.model.architecture
