"""Records of the profile stage: latency, ablation, per-op time, fusion, deployment cells; microbenchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field

from actprof.schema.environment import Environment, GpuInfo
from actprof.settings.profile import ProfileSettings


@dataclass(frozen=True)
class Interval:
    """A point estimate with the 95% confidence interval of that same statistic (over ``n`` values)."""

    value: float
    low: float
    high: float
    n: int


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
    provider: str  # cpu | cuda | openvino | torch | inductor
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
    compile_seconds: float | None = None  # ahead of the first run, at the smallest batch (Inductor); else None


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
