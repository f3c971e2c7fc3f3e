"""Typed result records, one JSON writer, and atomic writes for every artifact.

Every record is a frozen dataclass. ``to_dict``/``from_dict`` round-trip through plain JSON types, and
``write_json``/``read_json`` are the only way records reach the disk. Writes go to a temporary file in
the target directory and are renamed into place, so an interrupted run never leaves a partial file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import tempfile
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from actprof.environment import Environment
from actprof.errors import ModelFileError, OutputError, UsageError

SCHEMA_VERSION = 1

T = TypeVar("T")


# --- atomic writes ---------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _output_error(path, exc) from None
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get the usual permissions
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise _output_error(path, exc) from None
    finally:
        # BaseException included: Ctrl-C must not leave the temporary file behind either.
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def _output_error(path: Path, exc: OSError) -> OutputError:
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full; free space or choose another --out"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "permission denied; choose a writable --out directory"
    else:
        hint = exc.strerror or str(exc)
    return OutputError(f"cannot write {path}: {hint}")


# --- records <-> JSON ------------------------------------------------------------------------


def to_dict(record: Any) -> Any:
    """Plain JSON types for a record; non-finite floats become null (JSON has no NaN)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: to_dict(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, dict):
        return {str(k): to_dict(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [to_dict(v) for v in record]
    if isinstance(record, float) and not math.isfinite(record):
        return None
    if isinstance(record, Path):
        return str(record)
    if hasattr(record, "item") and callable(record.item):  # numpy / torch scalars
        return to_dict(record.item())
    return record


def from_dict(cls: type[T], data: Any) -> T:
    """Build ``cls`` from plain JSON data, checking the shape; raises ``ValueError`` on mismatch."""
    return _convert(cls, data, cls.__name__)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors) or f"{where}: unexpected null")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for field in dataclasses.fields(tp):
            if field.name in value:
                kwargs[field.name] = _convert(hints[field.name], value[field.name], f"{where}.{field.name}")
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: missing field {field.name!r}")
        return tp(**kwargs)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        vt = args[1] if args else Any
        return {str(k): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {type(value).__name__}")
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"{where}: {str(value)[:20]}… is too large for a number") from None
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {type(value).__name__}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ValueError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
        return value
    return value


def dumps(record: Any) -> str:
    return json.dumps(to_dict(record), indent=2, allow_nan=False) + "\n"


def write_json(path: Path, record: Any) -> None:
    """The one JSON writer: schema-versioned records, written atomically."""
    write_text_atomic(path, dumps(record))


def read_json(path: Path, cls: type[T]) -> T:
    """Load a record, refusing files that are not JSON, of the wrong shape, or of a newer schema."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist; check the path") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a directory, expected a JSON file") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, or an int past the digit limit
        raise ModelFileError(f"{path} is not valid JSON; regenerate it") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} does not hold an actprof record (expected a JSON object)")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"{path} has no schema_version; it is not an actprof record")
    if version > SCHEMA_VERSION:
        raise ModelFileError(
            f"{path} uses schema {version}, newer than this actprof ({SCHEMA_VERSION}); upgrade actprof"
        )
    try:
        return from_dict(cls, data)
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise ModelFileError(f"{path} is not a valid {cls.__name__} record ({exc}); regenerate it") from None


# --- the records of each stage -----------------------------------------------------------------

PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("cpu", "cuda")
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
class ModelConfig:
    activation: str
    param: float | None  # the activation's parameter (alpha, slope, beta…); None when it has none
    init: str  # he | lecun | glorot | default
    dropout: float = 0.25
    alpha_dropout: bool = False


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1
    batch_size: int = 250
    lr: float = 1e-3
    seed: int = 0
    val_fraction: float = 0.1
    val_every: int = 0  # steps between validation points; 0: about 12 points per run
    val_size: int = 2000  # images of the validation split evaluated at each point
    # auto: bf16 autocast where the CPU or GPU has native bf16 (about 2x faster here, same accuracy), else
    # fp32. The validation curve and the test accuracy are measured at this precision; the weights, the
    # export, its ONNX test accuracy and all profiling stay fp32 either way.
    precision: str = "auto"
    # Run a monotonic activation after its MaxPool while training: the same function (MaxPool(f(x)) ==
    # f(MaxPool(x))) on 4x fewer elements; gradients differ only where saturation ties two pool inputs.
    pool_first: bool = True
    threads: int = 0  # 0: all cores
    device: str = "cpu"  # where PyTorch trains; the exported model and its parity check are always fp32 CPU

    def validate(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size}
        for name, value in positive.items():
            if value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.val_every < 0:
            raise UsageError(f"--val-every must be 0 (automatic) or more, got {self.val_every}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"--lr must be a positive number, got {self.lr}")
        if self.val_size < 1:
            raise UsageError(f"--val-size must be at least 1, got {self.val_size}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown --precision {self.precision!r}; choose from: {', '.join(PRECISIONS)}")
        if self.threads < 0:
            raise UsageError(f"--threads must be 0 (all cores) or more, got {self.threads}")
        if self.device not in DEVICES:
            raise UsageError(f"unknown --device {self.device!r}; choose from: {', '.join(DEVICES)}")


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
    target: float
    step: int | None  # None: never reached in this run
    seconds: float | None


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

    @property
    def name(self) -> str:
        """The activation, plus the rewrite applied to its graph: how profiles and reports name a model."""
        return self.activation.name + (f"+{self.rewrite}" if self.rewrite else "")

    @property
    def runs(self) -> list[TrainResult]:
        """Every training run of this activation, the exported seed first."""
        return [self.train, *self.seed_runs]


# --- profile records -------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% confidence interval (bootstrap over ``n`` values)."""

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
    name: str  # cpu | cuda
    execution_provider: str  # CPUExecutionProvider | CUDAExecutionProvider
    compiled: bool  # listed by onnxruntime.get_available_providers()
    binds: bool  # a real session created with it reports it first in get_providers()
    reason: str  # why it does not bind, or what bound


@dataclass(frozen=True)
class GpuInfo:
    name: str
    driver: str
    memory_mib: int


@dataclass(frozen=True)
class ProfileSettings:
    providers: list[str]
    batch_sizes: list[int]
    threads: int  # ORT intra-op threads; 0: ORT's default (one per physical core)
    opt_levels: list[str]
    min_time: float  # seconds of timed runs per target, at least
    min_runs: int
    ablation: bool
    cuda_graph: bool
    input: str  # what was fed: real MNIST test images


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
    vs_baseline: Interval | None  # median per-round latency ratio against the baseline model


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
    layout_us_per_run: float  # ReorderInput/ReorderOutput/Transpose that ORT added
    foreign_nodes: list[str]  # nodes that ran on a provider other than the requested one

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
    fused: dict[str, int]  # e.g. "FusedConv(Relu)", "nchwc.Conv(Relu)", "FusedGemm(Relu)" -> count
    reorders: int  # layout conversions (ReorderInput/ReorderOutput) ORT inserted


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


@dataclass(frozen=True)
class LatencyBrief:
    provider: str
    batch: int
    mode: str
    p50_ms: float
    p99_ms: float
    vs_baseline: Interval | None


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
