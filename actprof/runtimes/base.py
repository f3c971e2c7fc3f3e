"""The one interface every inference runtime offers (``Backend``), and what it hands back to be timed.

A *backend* is one runtime on one device, named as the user names it with ``--provider``. It says whether it
really binds here, loads a model for its device and precision, makes a timing target over a loaded model,
describes what its optimizer made of the graph (fusion census), and opens a per-op profiler. Each runtime
only builds and runs: how long to run, warm-up and interleaving are the measuring code's (``measure``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actprof.errors import UsageError
from actprof.graphs.surgery import INPUT_NAME, OUTPUT_NAME
from actprof.schema.profiling import FusionCensus, OpProfile, ProviderStatus
from actprof.settings.profile import runs_on

# One batch: the array of a one-input model, or {input name: array} for a model with several inputs.
Batch = np.ndarray | dict[str, np.ndarray]


def feeds_of(x: Batch, input_name: str) -> dict[str, np.ndarray]:
    """Every input's array for one run (a bare array is ``input_name``'s)."""
    return dict(x) if isinstance(x, dict) else {input_name: x}


@dataclass
class Target:
    """A loaded model ready to run one batch: ``run`` is what the harness times; ``load`` puts a new batch
    of the same shape in place and ``output`` returns the outputs for the loaded batch (neither is timed).
    On the GPU ``output`` reads the bound buffer the last ``run`` wrote; on the host it runs once more."""

    session: Any
    run: Callable[[], object]
    load: Callable[[Batch], None]
    output: Callable[[], np.ndarray]


@dataclass
class OpProfiler:
    """A model loaded with the runtime's profiler on: the measuring code calls ``run`` (``warm_up`` times,
    then ``runs`` times, each followed by ``after_each``), then ``finish(warm_up, runs)`` for the per-op
    times and what ran where."""

    run: Callable[[], object]
    finish: Callable[[int, int], OpProfile]
    after_each: Callable[[], object] = field(default=lambda: None)


class Backend:
    """One inference runtime on one device. Subclasses implement every method."""

    name: str  # as in --provider: cpu | cuda | openvino
    label: str  # what the runtime calls it, e.g. CPUExecutionProvider
    precisions: tuple[str, ...]  # the inference precisions it runs (settings.profile.SUPPORTED_PRECISIONS)
    has_op_profiler: bool = True  # False: per-op time is not read on this runtime (the profile says so)
    several_inputs: bool = True  # False: it times models with one input only (swap refuses the others)

    def status(self) -> ProviderStatus:
        """Whether the backend is installed and a real model binds to it."""
        raise NotImplementedError

    def load(self, model: bytes, *, opt_level: str, precision: str = "fp32", cuda_graph: bool = False) -> Any:
        """The model compiled for this backend (an ORT session); a refusal if it would not really run here.

        ``model`` is already in ``precision`` where the graph carries it (int8 QDQ, fp16); where the runtime
        chooses it at compile time (OpenVINO's bf16), ``load`` asks for it and checks it was granted."""
        raise NotImplementedError

    def runs(self, precision: str) -> bool:
        """Whether this backend runs ``precision`` on this machine: supported, and natively here."""
        return precision in self.precisions and self.runs_here(precision) is None

    def runs_here(self, precision: str) -> str | None:
        """None where this machine runs ``precision`` on this backend natively; else why not, in a few words
        (``precisions`` says what the runtime supports anywhere)."""
        return None

    def opt_levels(self, requested: list[str]) -> list[str]:
        """The optimization levels this backend is profiled at (ORT's four; OpenVINO has one)."""
        return requested

    def runs_as(self, loaded: Any, precision: str) -> str:
        """The precision the loaded model really runs at, as the runtime reports it."""
        return precision

    def threads(self, loaded: Any) -> int:
        """Intra-op threads the runtime runs this model with."""
        raise NotImplementedError

    def compile_seconds(self, loaded: Any) -> dict[int, float]:
        """Seconds spent compiling the loaded model per batch size, where a runtime compiles on the first run
        of a shape (Inductor); empty where loading is all the preparation (ORT, OpenVINO)."""
        return {}

    def compute_target(
        self, loaded: Any, x: Batch, *, input_name: str = INPUT_NAME, output_name: str = OUTPUT_NAME
    ) -> Target:
        """Compute latency: on a device, inputs and outputs stay bound there (no host copies timed). ``x``: the
        batch for ``input_name``, or a dict with every input's batch."""
        raise NotImplementedError

    def end_to_end_target(self, model: bytes, x: np.ndarray, *, opt_level: str) -> Target | None:
        """Latency with host copies, where it differs from compute latency (a GPU); else None."""
        return None

    def census(
        self,
        name: str,
        model: bytes,
        *,
        opt_level: str,
        precision: str = "fp32",
        activation_ops: frozenset[str] | None = None,
    ) -> FusionCensus:
        """What the runtime's optimizer made of the graph (``activation_ops``: see attribution.classifier)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def op_profiler(
        self,
        name: str,
        model: bytes,
        *,
        batch: int,
        opt_level: str,
        x: np.ndarray,
        precision: str = "fp32",
        names: tuple[str, str] = (INPUT_NAME, OUTPUT_NAME),
        activation_ops: frozenset[str] | None = None,
    ) -> Iterator[OpProfiler]:
        """A dedicated profiling load of the model (never the timed one). ``names``: the model's input and
        output tensor."""
        raise NotImplementedError
        yield  # pragma: no cover


_THREADS: list[int] = []  # the intra-op thread count of this process, fixed by the first fix_threads()


def fix_threads(threads: int = 0) -> int:
    """The intra-op thread count every runtime of this process runs with (0: one per physical core); the
    first call fixes it, and returns the count fixed. ONNX Runtime's global pool cannot be resized once
    made, and OpenVINO is given the same count, so that the runtimes are compared at equal threads."""
    if not _THREADS:
        _THREADS.append(threads)
    return _THREADS[0]


def fixed_threads() -> int:
    """The count ``fix_threads`` fixed (0 before any call: the runtime's default)."""
    return _THREADS[0] if _THREADS else 0


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error's text (runtimes raise pages), or its type's name."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Python-level chatter dropped inside: warnings, prints and logging of torch.export, the ONNX exporter and
    ExecuTorch's lowering. A failure is still raised, and each caller turns it into one line."""
    import io
    import logging
    import warnings

    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        previous = logging.root.manager.disable
        logging.disable(logging.CRITICAL)  # torch.export logs a failing graph at ERROR level
        try:
            yield
        finally:
            logging.disable(previous)


@contextlib.contextmanager
def native_stderr_to(file) -> Iterator[None]:
    """What native code writes to fd 2 inside goes to ``file`` (open, binary) instead of the terminal."""
    import os

    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """What native code writes to fd 2 inside is dropped: Kineto's profiler start/stop lines, ExecuTorch's cpuinfo
    notes on import. Python's own errors still surface as exceptions."""
    import os

    with open(os.devnull, "wb") as sink, native_stderr_to(sink):
        yield


def probe_model() -> bytes:
    """A one-node model (Relu) every runtime must load and run before it counts as bound."""
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    g = helper.make_graph(
        [node],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


def check_precision(backend: Backend, precision: str) -> None:
    if precision not in backend.precisions:
        raise UsageError(
            f"--precision {precision} is not something --provider {backend.name} runs "
            f"(it runs {', '.join(backend.precisions)}); {runs_on(precision)}"
        )
