"""PyTorch as the runtime: the network served from eager PyTorch (``--provider torch``) or compiled by
TorchInductor for the CPU (``--provider inductor``), never through ONNX.

The model is the ONNX file rebuilt as ``torch.nn`` layers (``torch_graph``), so the torch columns time the
same weights and the same ablation variants as every other runtime. Eager runs under ``torch.inference_mode``
at the process's fixed thread count; Inductor compiles with freezing on (weights as constants, which is what
lets it pack them for oneDNN and fuse activations into the convolutions' epilogues: the configuration
PyTorch documents for CPU inference), one static shape per batch, the whole graph or a refusal. Compiling
happens on a target's first run, outside every timed run; the seconds it took are kept per load
(``compile_seconds``). bf16 is autocast, and only where the CPU has native bf16 (AVX512-BF16 or AMX):
elsewhere oneDNN emulates it and the column would time the emulation.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actprof import activations
from actprof.errors import ProviderUnavailable, UsageError
from actprof.graphs.surgery import INPUT_NAME, OUTPUT_NAME
from actprof.runtimes import attribution, inductor_code
from actprof.runtimes.base import (
    Backend,
    Batch,
    OpProfiler,
    Target,
    check_precision,
    feeds_of,
    first_line,
    fixed_threads,
    native_stderr_silenced,
    probe_model,
)
from actprof.runtimes.torch_graph import to_torch
from actprof.schema.environment import physical_cores
from actprof.schema.profiling import FusionCensus, OpProfile, ProviderStatus
from actprof.settings.profile import SUPPORTED_PRECISIONS

LABELS = {"torch": "PyTorch eager (inference_mode)", "inductor": "TorchInductor CPU (torch.compile, freezing)"}
# Eager's ATen ops (self time) → the ONNX op type they run; the rest are named by their ATen name.
EAGER_OPS = {
    "aten::mkldnn_convolution": "Conv",
    "aten::_convolution": "Conv",
    "aten::convolution": "Conv",
    "aten::conv2d": "Conv",
    "aten::max_pool2d_with_indices": "MaxPool",
    "aten::max_pool2d": "MaxPool",
    "aten::addmm": "Gemm",
    "aten::linear": "Gemm",
    "aten::mm": "Gemm",
    "aten::t": "Gemm",
    "aten::view": "Reshape",
    "aten::reshape": "Reshape",
    "aten::_unsafe_view": "Reshape",
    "aten::flatten": "Reshape",
    "aten::empty": "Reshape",
    "aten::as_strided": "Reshape",
    "aten::transpose": "Reshape",
    "aten::contiguous": "Reshape",
}


@dataclass
class Loaded:
    """A model rebuilt for one torch backend and precision; ``compile_seconds``: Inductor's, per batch."""

    module: Any
    precision: str
    threads: int
    compiled: bool
    compile_seconds: dict[int, float] = field(default_factory=dict)


def bf16_native() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX), not emulated."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def _inductor_works() -> str | None:
    """None where Inductor compiles and runs a one-op model here; else why not, in one line."""
    try:
        backend = TorchBackend("inductor")
        loaded = backend._rebuild(probe_model(), "fp32")
        target = backend.compute_target(loaded, np.zeros(1, dtype=np.float32), input_name="x", output_name="y")
        target.run()
    except Exception as exc:  # a missing compiler surfaces as InductorError / CalledProcessError / OSError
        return (
            f"--provider inductor: TorchInductor cannot compile here ({first_line(exc)[:160]}); "
            "it needs a working C++ compiler (g++)"
        )
    return None


class TorchBackend(Backend):
    precisions = SUPPORTED_PRECISIONS["torch"]
    several_inputs = False  # the rebuilt module takes one tensor: one-input networks (images, actprof's own)

    def __init__(self, name: str) -> None:
        self.name = name
        self.label = LABELS[name]
        self.compiled = name == "inductor"

    def status(self) -> ProviderStatus:
        import torch

        if self.compiled:
            reason = _inductor_works()
            if reason:
                return ProviderStatus(self.name, self.label, True, False, reason)
        threads = fixed_threads() or physical_cores()
        bound = f"bound: torch {torch.__version__} CPU, {threads} threads"
        return ProviderStatus(self.name, self.label, True, True, bound)

    def opt_levels(self, requested: list[str]) -> list[str]:
        return ["default"]

    def runs_here(self, precision: str) -> str | None:
        if precision == "bf16" and not bf16_native():
            return "this CPU has no native bf16 (AVX512-BF16 or AMX): PyTorch would time oneDNN's emulation"
        return None

    def load(self, model: bytes, *, opt_level: str, precision: str = "fp32", cuda_graph: bool = False) -> Loaded:
        check_precision(self, precision)
        if reason := self.runs_here(precision):
            raise ProviderUnavailable(f"--precision {precision} on --provider {self.name}: {reason}; choose fp32")
        return self._rebuild(model, precision)

    def _rebuild(self, model: bytes, precision: str) -> Loaded:
        import torch

        threads = fixed_threads() or physical_cores()
        torch.set_num_threads(threads)
        return Loaded(to_torch(model), precision, threads, self.compiled)

    def runs_as(self, loaded: Loaded, precision: str) -> str:
        return precision

    def threads(self, loaded: Loaded) -> int:
        return loaded.threads

    def compile_seconds(self, loaded: Loaded) -> dict[int, float]:
        return dict(loaded.compile_seconds)

    def compute_target(
        self, loaded: Loaded, x: Batch, *, input_name: str = INPUT_NAME, output_name: str = OUTPUT_NAME
    ) -> Target:
        """``run`` is one forward pass of the module (compiled for this batch's shape on the first, untimed
        call) on a tensor that shares the loaded batch's memory."""
        import torch

        feeds = feeds_of(x, input_name)
        if len(feeds) != 1:
            raise UsageError(
                f"--provider {self.name} times models with one input, this one reads {', '.join(feeds)}; "
                "profile it with --provider cpu or openvino"
            )
        batch = torch.from_numpy(np.ascontiguousarray(next(iter(feeds.values())))).clone()
        forward = self._forward(loaded, batch)

        def run() -> None:  # the output is dropped at once, as a serving loop that hands it on would
            forward(batch)

        def load(new: Batch) -> None:
            batch.copy_(torch.from_numpy(np.ascontiguousarray(next(iter(feeds_of(new, input_name).values())))))

        def output() -> np.ndarray:
            return forward(batch).float().numpy()

        return Target(loaded, run, load, output)

    def _forward(self, loaded: Loaded, example):
        """The callable timed: eager, or Inductor's compiled module after its first (compiling) call."""
        import torch

        module = _compile(loaded.module) if loaded.compiled else loaded.module
        if loaded.precision == "bf16":

            def forward(x):
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    return module(x)

        else:  # no autocast context at all: even a disabled one costs ~5 µs a call

            def forward(x):
                with torch.inference_mode():
                    return module(x)

        if not loaded.compiled:
            return forward

        first = not loaded.compile_seconds  # timed cold: Inductor's caches would make a rerun look free
        started = time.perf_counter()
        with _freezing(), torch._inductor.config.patch({"force_disable_caches": first}), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Dynamo warns that its profile-guided cache is off, once
            forward(example)
        loaded.compile_seconds.setdefault(int(example.shape[0]), time.perf_counter() - started)
        return forward

    def census(
        self,
        name: str,
        model: bytes,
        *,
        opt_level: str,
        precision: str = "fp32",
        activation_ops: frozenset[str] | None = None,
    ) -> FusionCensus:
        """Eager: every layer its own kernel. Inductor: the kernels its generated code calls at batch 1."""
        loaded = self.load(model, opt_level=opt_level, precision=precision)
        if not loaded.compiled:
            layers = [(op, [op]) for op in _module_ops(loaded.module)]
            return attribution.census_of_runtime_layers(
                name, layers, provider=self.name, opt_level=opt_level, is_activation=self.is_activation(activation_ops)
            )
        sites = Counter(op for op in _module_ops(loaded.module) if op in inductor_code.ACTIVATION.values())
        x = np.zeros((1, *_input_shape(model)), np.float32)
        return inductor_code.census(
            name, self.generated_code(loaded, x), sites, provider=self.name, opt_level=opt_level, precision=precision
        )

    @staticmethod
    def is_activation(activation_ops: frozenset[str] | None) -> attribution.Classifier:
        """Activation ops by name (a torch profile names ATen ops and Inductor loops, not ONNX's network ops)."""
        return attribution.classifier(activation_ops or frozenset(inductor_code.ACTIVATION.values()))

    def generated_code(self, loaded: Loaded, x: np.ndarray) -> str:
        """The Python module Inductor generated for this model at ``x``'s shape (a compile of its own)."""
        import torch
        from torch._inductor.utils import run_and_get_code

        compiled = _compile(loaded.module)
        with _freezing(), torch.inference_mode():
            autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=loaded.precision == "bf16")
            with autocast:
                _, sources = run_and_get_code(compiled, torch.from_numpy(x))
        return "\n".join(sources)

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
        """Per-op self time from ``torch.profiler`` over every run after the warm-up; Inductor's own C++ loops
        are recorded too (compiled with kernel profiling on, a compile of its own)."""
        import torch

        loaded = self.load(model, opt_level=opt_level, precision=precision)
        with torch._inductor.config.patch({"cpp.enable_kernel_profile": True}):
            target = self.compute_target(loaded, x, input_name=names[0], output_name=names[1])
        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        started = [False]

        def after_each() -> None:  # recording starts after the first timed run, which is left uncounted
            if not started[0]:
                with native_stderr_silenced():
                    profiler.start()
                started[0] = True

        def finish(warm_up: int, runs: int) -> OpProfile:
            with native_stderr_silenced():
                profiler.stop()
            totals = _self_times(profiler.key_averages(), provider=self.name)
            return attribution.op_profile_of(
                totals,
                model=name,
                provider=self.name,
                batch=batch,
                opt_level=opt_level,
                runs=runs - 1,
                foreign_nodes=[],
                is_activation=self.is_activation(activation_ops),
            )

        yield OpProfiler(run=target.run, finish=finish, after_each=after_each)


def _compile(module):
    import torch

    return torch.compile(module, dynamic=False, fullgraph=True)


@contextlib.contextmanager
def _freezing():
    import torch

    with torch._inductor.config.patch({"freezing": True}):
        yield


def _module_ops(module) -> list[str]:
    """The ONNX op type each call of an eager module's graph runs, in order (its own kernel each)."""
    ops = []
    for node in module.graph.nodes:
        if node.op == "call_module":
            ops.append(_eager_op(type(module.get_submodule(node.target)).__name__))
        elif node.op in ("call_function", "call_method"):
            ops.append(_eager_op(getattr(node.target, "__name__", str(node.target))))
    return ops


_MODULE_OPS = {
    **{row.torch: row.onnx.op or row.torch for row in activations.candidates().values()},  # ELU → Elu, SiLU
    "PReLU": "PRelu",
    "ReLU6": "Clip",
    "Hardsigmoid": "HardSigmoid",
    "Conv1d": "Conv",
    "Conv2d": "Conv",
    "Conv3d": "Conv",
    "MaxPool2d": "MaxPool",
    "AvgPool2d": "AveragePool",
    "Linear": "Gemm",
    "BatchNorm2d": "BatchNormalization",
    "reshape": "Reshape",
    "flatten": "Flatten",
    "add": "Add",
    "mul": "Mul",
}


def _eager_op(name: str) -> str:
    return _MODULE_OPS.get(name, name)


def _self_times(events, *, provider: str) -> dict[tuple[str, str], tuple[float, int]]:
    """Profiler events → {(op type, provider): (total self µs, calls)}: ATen ops by the ONNX op they run,
    Inductor's C++ loops by the ops they list (``inductor_code.loop_label``), the compiled graph's Python
    wrapper as itself."""
    totals: dict[tuple[str, str], tuple[float, int]] = {}
    for event in events:
        if event.self_cpu_time_total <= 0:
            continue
        op = event_op(event.key)
        total, count = totals.get((op, provider), (0.0, 0))
        totals[(op, provider)] = (total + event.self_cpu_time_total, count + event.count)
    return totals


def event_op(key: str) -> str:
    """One profiler event's op type."""
    if "cpp_fused_" in key:
        return inductor_code.loop_label(key)
    if key in EAGER_OPS:
        return EAGER_OPS[key]
    name = key.split("::")[-1]
    if "conv" in name:
        return "Conv"
    if "linear" in name or name in ("addmm", "mm"):
        return "Gemm"
    if "pool" in name:
        return "MaxPool"
    if name == "clamp_min":  # ReLU's kernel
        return "Relu"
    if key.startswith(("## Call CompiledFxGraph", "Torch-Compiled Region", "CompiledFunction", "TorchDynamo")):
        return "torch.compile wrapper"
    return inductor_code.ACTIVATION.get(name, key)


def _input_shape(model: bytes) -> tuple[int, ...]:
    """The model's input shape without its batch dimension (1×28×28 where the file does not say)."""
    import onnx

    graph = onnx.load_from_string(model).graph
    initializers = {t.name for t in graph.initializer}
    first = next(v for v in graph.input if v.name not in initializers)
    dims = [d.dim_value for d in first.type.tensor_type.shape.dim][1:]
    return tuple(dims) if dims and all(d > 0 for d in dims) else (1, 28, 28)
