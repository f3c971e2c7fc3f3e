"""Where and how inference is timed: providers, precisions, batch sizes, optimization levels, timing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from actprof.errors import UsageError
from actprof.settings.parse import one_of, parse_choices, parse_positive_ints, require

# Where inference is profiled: ONNX Runtime's CPU and CUDA providers, OpenVINO's CPU plugin, PyTorch itself
# on the CPU (eager, and compiled by TorchInductor), and ExecuTorch with its XNNPACK delegate.
PROVIDERS = ("cpu", "cuda", "openvino", "torch", "inductor", "executorch")
OPT_LEVELS = ("disabled", "basic", "extended", "all")
# Inference precisions, and which each provider runs: int8 is a static QDQ model from ONNX Runtime's
# quantizer; fp16 the graph converted with fp32 inputs and outputs; bf16 OpenVINO's inference precision and
# PyTorch's CPU autocast.
INFERENCE_PRECISIONS = ("fp32", "int8", "bf16", "fp16")
SUPPORTED_PRECISIONS = {
    "cpu": ("fp32", "int8"),
    "cuda": ("fp32", "fp16"),
    "openvino": ("fp32", "bf16", "int8"),
    "torch": ("fp32", "bf16"),
    "inductor": ("fp32", "bf16"),
    "executorch": ("fp32",),
}
CALIBRATION_IMAGES = 512  # MNIST training images that calibrate the int8 models
MNIST_INPUT = "real MNIST test images (bundled sample)"
MIN_TIME = 0.5  # seconds of timed runs per target, at least
MIN_RUNS = 30
MAX_BATCH = 65536


def runs_on(precision: str) -> str:
    """Where a precision runs, in words for a refusal."""
    providers = [p for p, runs in SUPPORTED_PRECISIONS.items() if precision in runs]
    if not providers:
        return f"choose from: {', '.join(INFERENCE_PRECISIONS)}"
    return f"{precision} runs on --provider {', '.join(providers)}"


def parse_batch_sizes(spec: str) -> list[int]:
    return parse_positive_ints(spec, "--batch-sizes", limit=MAX_BATCH)


def parse_opt_levels(spec: str) -> list[str]:
    return parse_choices(spec, OPT_LEVELS, "--opt-level")


def check_timing(*, min_time: float, min_runs: int, threads: int) -> None:
    """The timing options every measuring command shares (checked before anything slow starts)."""
    require(
        math.isfinite(min_time) and min_time > 0, f"--min-time must be a positive number of seconds, got {min_time}"
    )
    require(min_runs >= 1, f"--min-runs must be at least 1, got {min_runs}")
    require(threads >= 0, f"--threads must be 0 (ORT default) or more, got {threads}")


def check_precisions(providers: Sequence[str], precisions: Sequence[str]) -> None:
    """Refuse a precision that none of ``providers`` runs."""
    for precision in precisions:
        if not any(precision in SUPPORTED_PRECISIONS[p] for p in providers):
            where = ",".join(providers) or "none (nothing bound)"
            raise UsageError(f"--precision {precision} does not run on --provider {where}; {runs_on(precision)}")


@dataclass(frozen=True)
class ProfileSettings:
    """The profile stage's (and ``swap``'s) choices. ``providers`` are those requested until the stage
    starts, then those that bind here; ``threads`` is then the ONNX Runtime pool's real size (0: ORT's
    default, one thread per physical core)."""

    providers: list[str] = field(default_factory=lambda: ["cpu"])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 64])
    threads: int = 0
    opt_levels: list[str] = field(default_factory=lambda: ["all"])
    min_time: float = MIN_TIME
    min_runs: int = MIN_RUNS
    ablation: bool = True
    cuda_graph: bool = False
    input: str = MNIST_INPUT  # what was fed
    precisions: list[str] = field(default_factory=lambda: ["fp32"])  # inference precisions (deployment cells)
    calibration_images: int = CALIBRATION_IMAGES

    def __post_init__(self) -> None:
        for provider in self.providers:
            one_of(provider, PROVIDERS, "--provider")
        require(bool(self.precisions), "--precision is empty; choose from: " + ", ".join(INFERENCE_PRECISIONS))
        for precision in self.precisions:
            one_of(precision, INFERENCE_PRECISIONS, "--precision")
        require(
            1 <= self.calibration_images <= 60000,
            f"--calibration-images must be from 1 to 60000, got {self.calibration_images}",
        )
        for level in self.opt_levels:
            one_of(level, OPT_LEVELS, "--opt-level")
        require(bool(self.opt_levels), "--opt-level is empty; choose from: " + ", ".join(OPT_LEVELS))
        require(
            bool(self.batch_sizes) and all(1 <= b <= MAX_BATCH for b in self.batch_sizes),
            f"--batch-sizes must be integers from 1 to {MAX_BATCH}, got {self.batch_sizes}",
        )
        check_timing(min_time=self.min_time, min_runs=self.min_runs, threads=self.threads)
        check_precisions(self.providers, self.precisions)  # a mistake is refused before anything slow starts


# `actprof run` answers the question in about two minutes on two cores: it times each target for a fifth of
# `profile`'s time, at 20 runs at least (its intervals are wider, and say so), at batch 1 and 64.
RUN_PROFILE = ProfileSettings(min_time=0.1, min_runs=20)
