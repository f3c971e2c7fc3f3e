"""What a user chose: the settings of each stage, checked the moment they are built.

Every settings class validates itself in ``__post_init__``, so a value is checked the same way whether it
came from the command line, from Python, or from a record loaded from disk. ``parse_choices`` and
``parse_positive_ints`` are the only parsers of comma-list options.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from actprof.errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16")  # training precision
# The networks trained: the seed CNN of the Keras ELU experiment, and a plain deep CNN without batch norm.
ARCHITECTURES = ("seed", "deep")
DESCRIPTIONS = {
    "seed": "seed CNN (2 conv + 2 dense, 3 activation sites)",
    "deep": "deep CNN (6 conv + 2 dense, no batch norm, 7 activation sites)",
}
DEVICES = ("cpu", "cuda")  # where PyTorch trains
# Where inference is profiled: ONNX Runtime's CPU and CUDA providers, and OpenVINO's CPU plugin.
PROVIDERS = ("cpu", "cuda", "openvino")
OPT_LEVELS = ("disabled", "basic", "extended", "all")
# Inference precisions, and which each provider runs: int8 is a static QDQ model from ONNX Runtime's
# quantizer; fp16 the graph converted with fp32 inputs and outputs; bf16 OpenVINO's inference precision.
INFERENCE_PRECISIONS = ("fp32", "int8", "bf16", "fp16")
SUPPORTED_PRECISIONS = {"cpu": ("fp32", "int8"), "cuda": ("fp32", "fp16"), "openvino": ("fp32", "bf16", "int8")}
CALIBRATION_IMAGES = 512  # MNIST training images that calibrate the int8 models


def runs_on(precision: str) -> str:
    """Where a precision runs, in words for a refusal."""
    providers = [p for p, runs in SUPPORTED_PRECISIONS.items() if precision in runs]
    if not providers:
        return f"choose from: {', '.join(INFERENCE_PRECISIONS)}"
    return f"{precision} runs on --provider {', '.join(providers)}"


def parse_choices(
    spec: str, choices: Sequence[str], option: str, *, allow_all: bool = False, what: str | None = None
) -> list[str]:
    """A comma list of names from ``choices``, lower-cased, in the order given, without repeats.

    ``allow_all``: the word ``all`` on its own stands for every choice. ``what`` names the
    kind of value in the error (default: the option itself, as in "unknown --provider 'tpu'").
    """
    items = [s.strip().lower() for s in spec.split(",") if s.strip()]
    listed = ", ".join(choices) + (", or 'all'" if allow_all else "")
    if not items:
        raise UsageError(f"{option} is empty; choose from: {listed}")
    if allow_all and items == ["all"]:
        return list(choices)
    bad = next((s for s in items if s not in choices), None)
    if bad is not None:
        shown = bad if what else spec
        raise UsageError(f"unknown {what or option} {shown!r}; choose from: {listed}")
    return list(dict.fromkeys(items))


def parse_positive_ints(spec: str, option: str, *, limit: int = 65536) -> list[int]:
    """A comma list of integers from 1 to ``limit``, without repeats."""
    try:
        values = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"{option} must be a comma list of positive integers, got {spec!r}") from None
    if not values or any(v < 1 or v > limit for v in values):
        raise UsageError(f"{option} must be a comma list of integers from 1 to {limit}, got {spec!r}")
    return list(dict.fromkeys(values))


def parse_positive_floats(spec: str, option: str) -> list[float]:
    """A comma list of finite positive numbers (``3e-4,1e-3``), in the order given, without repeats."""
    try:
        values = [float(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"{option} must be a comma list of positive numbers, got {spec!r}") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise UsageError(f"{option} must be a comma list of finite positive numbers, got {spec!r}")
    return list(dict.fromkeys(values))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


def _one_of(value: str, choices: Sequence[str], option: str) -> None:
    _require(value in choices, f"unknown {option} {value!r}; choose from: {', '.join(choices)}")


@dataclass(frozen=True)
class ModelConfig:
    activation: str
    param: float | None  # the activation's parameter (alpha, slope, beta…); None when it has none
    init: str  # he | lecun | glorot | default
    dropout: float = 0.25  # the rate of every dropout layer (alpha dropout's rate when alpha_dropout)
    alpha_dropout: bool = False
    architecture: str = "seed"  # seed | deep

    def __post_init__(self) -> None:
        option = "--alpha-dropout" if self.alpha_dropout else "--dropout"
        _require(
            math.isfinite(self.dropout) and 0.0 <= self.dropout < 1.0, f"{option} must be in [0, 1), got {self.dropout}"
        )
        _one_of(self.architecture, ARCHITECTURES, "--model")
        _require(self.param is None or math.isfinite(self.param), f"--alpha must be finite, got {self.param}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1
    batch_size: int = 250
    lr: float = 1e-3
    seed: int = 0
    val_fraction: float = 0.1
    val_every: int = 0  # steps between validation points; 0: dense where curves are steep (train.validation_steps)
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

    def __post_init__(self) -> None:
        for name, value in {"epochs": self.epochs, "batch_size": self.batch_size}.items():
            _require(value >= 1, f"--{name.replace('_', '-')} must be at least 1, got {value}")
        _require(self.val_every >= 0, f"--val-every must be 0 (automatic) or more, got {self.val_every}")
        _require(math.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}")
        _require(self.seed >= 0, f"--seed must be non-negative, got {self.seed}")
        _require(0.0 < self.val_fraction < 1.0, f"the validation fraction must be in (0, 1), got {self.val_fraction}")
        _require(self.val_size >= 1, f"--val-size must be at least 1, got {self.val_size}")
        _one_of(self.precision, PRECISIONS, "--precision")
        _require(self.threads >= 0, f"--threads must be 0 (all cores) or more, got {self.threads}")
        _one_of(self.device, DEVICES, "--device")


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
    precisions: list[str] = field(default_factory=lambda: ["fp32"])  # inference precisions (deployment cells)
    calibration_images: int = CALIBRATION_IMAGES

    def __post_init__(self) -> None:
        for provider in self.providers:
            _one_of(provider, PROVIDERS, "--provider")
        _require(bool(self.precisions), "--precision is empty; choose from: " + ", ".join(INFERENCE_PRECISIONS))
        for precision in self.precisions:
            _one_of(precision, INFERENCE_PRECISIONS, "--precision")
        _require(
            1 <= self.calibration_images <= 60000,
            f"--calibration-images must be from 1 to 60000, got {self.calibration_images}",
        )
        for level in self.opt_levels:
            _one_of(level, OPT_LEVELS, "--opt-level")
        _require(bool(self.opt_levels), "--opt-level is empty; choose from: " + ", ".join(OPT_LEVELS))
        _require(
            bool(self.batch_sizes) and all(b >= 1 for b in self.batch_sizes),
            f"--batch-sizes must be positive integers, got {self.batch_sizes}",
        )
        check_timing(min_time=self.min_time, min_runs=self.min_runs, threads=self.threads)


def check_timing(*, min_time: float, min_runs: int, threads: int) -> None:
    """The timing options every measuring command shares (checked before anything slow starts)."""
    _require(
        math.isfinite(min_time) and min_time > 0, f"--min-time must be a positive number of seconds, got {min_time}"
    )
    _require(min_runs >= 1, f"--min-runs must be at least 1, got {min_runs}")
    _require(threads >= 0, f"--threads must be 0 (ORT default) or more, got {threads}")


def describe(architecture: str) -> str:
    """The network in words, as every report names it."""
    return DESCRIPTIONS.get(architecture, architecture)


def recipe(config: ModelConfig) -> str:
    """The regularisation a run trained with, in words: "dropout 0.25", "alpha dropout 0.05", "no dropout"."""
    if config.dropout == 0:
        return "no dropout"
    return f"{'alpha dropout' if config.alpha_dropout else 'dropout'} {config.dropout:g}"
