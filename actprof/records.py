"""The records every stage writes: frozen dataclasses under one schema version.

This module is the schema only; ``storage`` reads and writes records, ``settings`` holds what a user chose
(and checks it). A record read from disk is rebuilt through the same constructors, so the settings inside
it are checked too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from actprof.environment import Environment
from actprof.settings import ModelConfig, ProfileSettings, TrainConfig

SCHEMA_VERSION = 3  # 3: learning-rate sweeps, architecture, interpolated time to accuracy; 2: deployment cells

__all__ = ["ModelConfig", "ProfileSettings", "TrainConfig"]  # re-exported: records embed the settings


# --- the records of each stage -----------------------------------------------------------------

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
        return f"{self.model.activation}-{self.model.architecture}-lr{self.train.lr!r}-s{self.train.seed}"


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


# --- profile records -------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A point estimate with the 95% confidence interval of that same statistic (over ``n`` values)."""

    value: float
    low: float
    high: float
    n: int

    def excludes(self, x: float) -> bool:
        return not (self.low <= x <= self.high)


@dataclass(frozen=True)
class LatencyStats:
    runs: int
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    cv: float
    throughput: float  # images per second at p50


@dataclass(frozen=True)
class ProviderStatus:
    name: str  # cpu | cuda | openvino
    execution_provider: str  # CPUExecutionProvider | CUDAExecutionProvider | OpenVINO CPU
    compiled: bool  # installed: listed by onnxruntime.get_available_providers(), or openvino importable
    binds: bool  # a real session created with it reports it first in get_providers()
    reason: str  # why it does not bind, or what bound


@dataclass(frozen=True)
class GpuInfo:
    name: str
    driver: str
    memory_mib: int


@dataclass(frozen=True)
class ModelRef:
    name: str
    file: str
    sha256: str
    dataset: str
    test_accuracy: float
    activation_ops: list[str]
    decomposed: bool


@dataclass(frozen=True)
class LatencyResult:
    model: str
    variant: str  # as-trained | relu-swap | identity
    provider: str
    batch: int
    opt_level: str
    mode: str  # compute (CPU; CUDA with IO binding) | end-to-end (CUDA with host copies)
    stats: LatencyStats
    vs_baseline: Interval | None  # median per-round latency ratio against the baseline, same provider and precision
    precision: str = "fp32"  # the inference precision of the model that ran
    vs_baseline_ms: Interval | None = None  # median per-round latency difference (ms) against the baseline


@dataclass(frozen=True)
class AblationResult:
    model: str
    provider: str
    batch: int
    opt_level: str
    as_trained_ms: float
    relu_swap_ms: float | None
    identity_ms: float
    activation_cost_ms: Interval  # as-trained − identity: what the activation op itself costs
    penalty_vs_relu_ms: Interval | None  # as-trained − relu-swap: extra cost over ReLU's kernel and fusions
    precision: str = "fp32"


@dataclass(frozen=True)
class OpTime:
    op_type: str
    provider: str
    nodes: int
    us_per_run: float
    share: float


@dataclass(frozen=True)
class OpProfile:
    model: str
    provider: str
    batch: int
    opt_level: str
    runs: int
    total_us_per_run: float
    ops: list[OpTime]
    activation_us_per_run: float
    activation_share: float
    layout_us_per_run: float  # ReorderInput/ReorderOutput/Transpose (ORT) or Reorder (OpenVINO) added
    foreign_nodes: list[str]  # nodes that ran on a provider other than the requested one
    precision: str = "fp32"

    @property
    def clock(self) -> str:
        """What ORT's per-node events time: "kernel" on the CPU (each kernel runs to completion), "launch" on
        CUDA (the host-side enqueue; ORT's pip build has no CUPTI, so GPU kernel time is not in the profile)."""
        return "launch" if self.provider == "cuda" else "kernel"


@dataclass(frozen=True)
class FusionCensus:
    model: str
    provider: str
    opt_level: str
    ops: dict[str, int]  # optimized graph, op type (domain-qualified outside ai.onnx) -> count
    activation_nodes_left: dict[str, int]  # the activation's own ops still standalone
    fused: dict[str, int]  # e.g. "FusedConv(Relu)", "nchwc.Conv(Relu)", "Convolution(Elu)" (OpenVINO) -> count
    reorders: int  # layout conversions (ReorderInput/ReorderOutput; OpenVINO's Reorder) inserted
    precision: str = "fp32"
    qdq_wrapped: dict[str, int] = field(default_factory=dict)  # int8: activation ops left between DQ and Q


@dataclass(frozen=True)
class Calibration:
    """The images an int8 model was calibrated on: MNIST training images, never validation or test ones."""

    dataset: str  # full | sample
    split: str
    images: int
    seed: int
    sha256: str  # of the calibration images' bytes


@dataclass(frozen=True)
class DeploymentCell:
    """One model deployed one way: a runtime, a precision, what it costs and what it still gets right."""

    model: str
    provider: str  # cpu | cuda | openvino
    precision: str  # fp32 | int8 | bf16 | fp16, as requested
    runs_as: str  # the precision the runtime reports it runs (OpenVINO's inference precision read back)
    threads: int  # intra-op threads the runtime uses
    file: str  # the derived model (int8, fp16) written beside the profile; the trained model otherwise
    sha256: str
    size_bytes: int
    accuracy: float  # on the whole test split of the dataset below
    test_images: int
    dataset: str
    argmax_agreement: float  # with the fp32 model in ONNX Runtime on the CPU, same images
    max_abs_logit_diff: float
    rss_added_bytes: int  # resident memory added by loading the model and running it once (smallest batch)


@dataclass(frozen=True)
class ProfileRecord:
    schema_version: int
    kind: str  # "profile"
    created: str
    environment: Environment
    gpu: GpuInfo | None
    settings: ProfileSettings
    providers: list[ProviderStatus]
    baseline: str | None
    models: list[ModelRef]
    latency: list[LatencyResult]
    ablation: list[AblationResult]
    op_profiles: list[OpProfile]
    fusion: list[FusionCensus]
    seconds: float
    deployments: list[DeploymentCell] = field(default_factory=list)
    calibration: Calibration | None = None


@dataclass(frozen=True)
class OpBandwidth:
    op: str  # an activation name, or "copy"
    onnx_ops: list[str]
    provider: str
    elements: int
    bytes_moved: int  # one read and one write of float32 per element
    p50_ms: float
    gbps: float
    fraction_of_copy: float  # this op's GB/s over the copy's, same size, same run


@dataclass(frozen=True)
class MicrobenchRecord:
    schema_version: int
    kind: str  # "microbench"
    created: str
    environment: Environment
    threads: int
    l3_bytes: int | None
    results: list[OpBandwidth]


# --- report records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its two-sided 95% t interval (NaN bounds for a single seed)."""

    mean: float
    low: float
    high: float
    n: int
    std: float


@dataclass(frozen=True)
class PairedComparison:
    """activation − baseline, paired by seed: mean difference, 95% CI, paired t-test, Cohen's d_z."""

    what: str
    n: int  # seeds where both sides have a value
    mean_difference: float
    low: float
    high: float
    p_value: float
    effect_size: float
    significant: bool
    higher_is_better: bool
    reached: str  # e.g. "3/3 vs 2/3": seeds that reached the target, activation vs baseline
    # Time to a target is read off validation points: the median bracket width around the crossings
    # compared. A difference no larger than it cannot be told apart (resolved False, never significant).
    resolution: float | None = None
    resolved: bool = True


@dataclass(frozen=True)
class LrCell:
    """One activation at one learning rate, over its seeds (validation split only)."""

    activation: str
    lr: float
    val_accuracy: Estimate  # final validation accuracy
    seconds_to_target: Estimate  # over the seeds that reached the report's target (n says how many)
    seeds: int
    chosen: bool  # this activation's best rate


@dataclass(frozen=True)
class SharedLrComparison:
    """Activation against the baseline with both at the one shared learning rate, paired by seed."""

    activation: str
    seconds_to_target: Estimate
    vs_baseline: PairedComparison | None  # seconds to the target; None with fewer than two paired seeds


@dataclass(frozen=True)
class LrStudy:
    """A learning-rate sweep read for the report: every (activation, rate) cell, each activation's chosen
    rate, and the comparison at one rate shared by all."""

    lrs: list[float]
    rule: str  # how each activation's rate was chosen
    cells: list[LrCell]
    shared_lr: float
    shared_rule: str
    at_shared: list[SharedLrComparison]
    shared_target: float | None = None  # the baseline's highest whole percent in every seed at the shared rate


@dataclass(frozen=True)
class LatencyBrief:
    provider: str
    batch: int
    mode: str
    p50_ms: float
    p99_ms: float
    vs_baseline: Interval | None
    precision: str = "fp32"
    vs_baseline_ms: Interval | None = None


@dataclass(frozen=True)
class ActivationSummary:
    name: str
    init: str
    precision: str
    dataset: str
    epochs: int
    test_accuracy: float
    onnx_test_accuracy: float
    images_per_second: float
    time_to_accuracy: list[TimeToAccuracy]
    mean_activation: list[float]  # per activation layer
    dead_fraction: list[float]
    latency: list[LatencyBrief]
    seeds: list[int] = field(default_factory=list)
    seconds_to_target: list[float | None] = field(default_factory=list)  # per seed; None: not reached
    vs_baseline: list[PairedComparison] = field(default_factory=list)
    # "test accuracy", "test loss", "seconds to 97%", "steps to 97%"…: mean, std and 95% CI over the seeds
    # (for time to a target, over the seeds that reached it: n says how many did)
    over_seeds: dict[str, Estimate] = field(default_factory=dict)
    rewrite: str | None = None  # an exact rewrite of another activation's model: same training, own inference
    lr: float | None = None  # the learning rate of the runs above (the chosen one in a sweep)
    recipe: str = ""  # the regularisation: "dropout 0.25", "alpha dropout 0.05"…
    contended_runs: int = 0  # runs that shared their node's cores with other trainings (Ray, packed tasks)


@dataclass(frozen=True)
class Verdict:
    activation: str
    baseline: str
    provider: str
    target_accuracy: float
    train_seconds: float | None  # to the target; None: not reached in this run
    baseline_train_seconds: float | None
    train_seconds_saved: float | None  # baseline − activation: positive when the activation converges faster
    ms_lost_per_image_batch1: Interval | None  # activation − baseline p50 at batch 1
    largest_batch: int | None
    ms_lost_per_batch: Interval | None  # at the largest batch
    break_even_batch1: float | None  # inferences at batch 1 after which the baseline is cheaper overall
    break_even_largest: float | None  # images served at the largest batch, likewise
    latency_within_noise: bool
    summary: str
    training: PairedComparison | None = None  # seconds to the target, paired by seed (several seeds)
    break_even_batch1_range: list[float] = field(default_factory=list)  # [low, high] from both intervals
    # the wider of the two validation brackets the crossings of the target were read in (one seed: a saving
    # no larger than this is not a difference)
    train_resolution_s: float | None = None
    precision: str = "fp32"  # the deployment target is (provider, precision)
    call: str = ""  # one word: wins | trade-off | tie | loses | incomplete (see verdict.call)


@dataclass(frozen=True)
class ReportRecord:
    schema_version: int
    kind: str  # "report"
    created: str
    baseline: str
    target_accuracy: float | None
    activations: list[ActivationSummary]
    verdicts: list[Verdict]
    profile_created: str | None
    environment: Environment
    target_rule: str = ""  # how the target accuracy was chosen, in words
    architecture: str = "seed"  # the network every activation was trained in (model.describe names it)
    lr_study: LrStudy | None = None  # a learning-rate sweep (--lr with several rates)


# --- bring your own model: the activation tax ----------------------------------------------------


@dataclass(frozen=True)
class SiteRecord:
    kind: str  # "Relu", "SiLU (x·Sigmoid(x))"…
    nodes: list[str]  # the node names (or op types where unnamed) the site spans
    input: str
    output: str
    elements: int | None  # of the site's output at the first batch size (None: shape not inferable)


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: list[int]  # at the first batch size
    dtype: str
    source: str  # "random normal, seed S" or the .npz file given


@dataclass(frozen=True)
class SwapVariant:
    name: str  # "original" or the candidate
    file: str  # written under <out>/variants/
    sha256: str
    size_bytes: int
    sites_replaced: int
    decomposed: bool  # the candidate written as several ops (the model's opset lacks the single op)
    rss_added_bytes: dict[str, int] = field(default_factory=dict)  # "provider precision" -> bytes


@dataclass(frozen=True)
class SwapRecord:
    schema_version: int
    kind: str  # "swap"
    created: str
    environment: Environment
    model: str  # the file given
    model_sha256: str
    opset: int
    inputs: list[InputSpec]
    sites: list[SiteRecord]
    replaced: list[int]  # indices into sites (--sites), every site by default
    variants: list[SwapVariant]
    settings: ProfileSettings
    providers: list[ProviderStatus]
    latency: list[LatencyResult]  # model = variant name; vs_baseline against the original
    op_profiles: list[OpProfile]
    fusion: list[FusionCensus]
    seconds: float
    calibration: str = ""  # int8: what calibrated it
    note: str = "swapped variants are not retrained: their outputs differ; only their cost is measured"
    batch_reshapes: list[str] = field(default_factory=list)  # Reshapes whose hard-coded batch became -1
