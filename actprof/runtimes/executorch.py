"""ExecuTorch with the XNNPACK delegate (``--provider executorch``): the network as shipped to phones.

The ONNX file is rebuilt as ``torch.nn`` layers (``torch_graph``), exported with ``torch.export`` at the batch's
static shape, lowered with ``to_edge_transform_and_lower`` and the ``XnnpackPartitioner``, and run by
ExecuTorch's runtime from the ``.pte`` program in memory. Ops XNNPACK takes run inside its delegate; the rest
run on ExecuTorch's portable kernels (plain C++ loops), which is where an activation XNNPACK does not support
ends up. Lowering happens at a target's first shape, outside every timed run (``compile_seconds``).
An optional extra: ``pip install 'actprof[executorch]'``. fp32 only here (ExecuTorch's int8 path goes through
a PT2E quantizer and calibration of its own, which this backend does not do yet).
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import tempfile
import time
from collections import Counter

from actprof.errors import ModelFileError, ProviderUnavailable
from actprof.runtimes import inductor_code
from actprof.runtimes.base import first_line, fixed_threads, native_stderr_silenced, native_stderr_to, quiet
from actprof.runtimes.pytorch import Loaded, TorchBackend
from actprof.schema.environment import package_version, physical_cores
from actprof.schema.profiling import FusionCensus, ProviderStatus
from actprof.settings.profile import SUPPORTED_PRECISIONS

LABEL = "ExecuTorch, XNNPACK delegate (CPU)"
INSTALL = "pip install 'actprof[executorch]'"


@functools.cache
def _modules():
    """ExecuTorch's lowering and runtime entry points (imported once: ~4 s)."""
    try:
        with quiet(), native_stderr_silenced():
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime
    except ImportError:
        raise ProviderUnavailable(
            f"--provider executorch: the executorch package is not installed; {INSTALL}"
        ) from None
    with native_stderr_silenced():
        runtime = Runtime.get()
    return XnnpackPartitioner, to_edge_transform_and_lower, runtime, portable_lib


class ExecuTorchBackend(TorchBackend):
    precisions = SUPPORTED_PRECISIONS["executorch"]
    has_op_profiler = False  # ExecuTorch's per-op times need an ETDump build of the runtime

    def __init__(self, name: str = "executorch") -> None:
        self.name = name
        self.label = LABEL
        self.compiled = True

    def status(self) -> ProviderStatus:
        try:
            _, _, _, portable = _modules()
        except ProviderUnavailable as exc:
            return ProviderStatus(self.name, LABEL, False, False, str(exc))
        version = package_version("executorch")
        threads = self._threads(portable)
        return ProviderStatus(self.name, LABEL, True, True, f"bound: ExecuTorch {version}, XNNPACK, {threads} threads")

    @staticmethod
    def _threads(portable) -> int:
        """Size ExecuTorch's thread pool to the process's fixed count; the count it runs with."""
        wanted = fixed_threads() or physical_cores()
        with contextlib.suppress(AttributeError, RuntimeError), native_stderr_silenced():  # cpuinfo's notes
            if portable._threadpool_get_thread_count() != wanted:
                portable._unsafe_reset_threadpool(wanted)
            return int(portable._threadpool_get_thread_count())
        return wanted

    def load(self, model: bytes, *, opt_level: str, precision: str = "fp32", cuda_graph: bool = False) -> Loaded:
        _, _, _, portable = _modules()
        loaded = super().load(model, opt_level=opt_level, precision=precision)
        loaded.threads = self._threads(portable)
        return loaded

    def _forward(self, loaded: Loaded, example):
        """The lowered program's ``forward`` for ``example``'s shape (lowering timed, never run timed)."""
        started = time.perf_counter()
        _, program = self.lowered(loaded, example)
        method = load_forward(program)
        loaded.compile_seconds.setdefault(int(example.shape[0]), time.perf_counter() - started)

        def forward(x):
            return method.execute([x])[0]

        forward.program = program  # type: ignore[attr-defined]  (the method needs it alive as long as itself)
        return forward

    def lowered(self, loaded: Loaded, example):
        """(the edge program manager, the runtime's program) lowered for ``example``'s shape."""
        import torch

        partitioner, lower, runtime, _ = _modules()
        try:
            with quiet():
                exported = torch.export.export(loaded.module, (example,))
                edge = lower(exported, partitioner=[partitioner()])
                program = runtime.load_program(edge.to_executorch().buffer)
        except Exception as exc:  # torch.export and the lowering raise many types, with pages of text
            raise ModelFileError(f"ExecuTorch cannot lower this model: {first_line(exc)[:200]}") from None
        return edge, program

    def census(
        self,
        name: str,
        model: bytes,
        *,
        opt_level: str,
        precision: str = "fp32",
        activation_ops: frozenset[str] | None = None,
    ) -> FusionCensus:
        """Which ops the XNNPACK delegate took and which stayed on the portable kernels, at batch 1."""
        import torch

        from actprof.runtimes.pytorch import _input_shape

        loaded = self.load(model, opt_level=opt_level, precision=precision)
        example = torch.zeros((1, *_input_shape(model)))
        edge, _ = self.lowered(loaded, example)
        delegated, portable = partition(edge.exported_program())
        return partition_census(name, delegated, portable, provider=self.name, opt_level=opt_level, precision=precision)


def load_forward(program):
    """The program's ``forward``, loaded. Where a kernel is missing, ExecuTorch raises only an error code and
    logs the op's name (its Python bindings to ``sys.stderr``, a native build to fd 2): both are read back."""
    with tempfile.TemporaryFile() as native, io.StringIO() as python:
        try:
            with native_stderr_to(native), contextlib.redirect_stderr(python):
                return program.load_method("forward")
        except Exception as exc:  # RuntimeError("Failed to load method forward, error: 0x:14") and kin
            native.seek(0)
            log = python.getvalue() + native.read().decode(errors="replace")
            raise load_error(log, first_line(exc)) from None


MISSING = (
    re.compile(r"Missing operator: \[\d+\] (\S+)"),  # method.cpp
    re.compile(r"kernel '([^']+)' not found"),  # operator_registry.cpp: the op exists, not for these dtypes
)


def missing_kernels(log: str) -> list[str]:
    """The ops ExecuTorch's log says it has no kernel for (``aten::linear.out``), each once, in order."""
    found = [match.group(1) for line in log.splitlines() for pattern in MISSING if (match := pattern.search(line))]
    return list(dict.fromkeys(found))


def load_error(log: str, error: str) -> Exception:
    """One line for a lowered program ExecuTorch cannot load: the ops its portable kernels lack where the log
    names them (not the input shape's fault: another provider runs the model), else the error itself."""
    ops = missing_kernels(log)
    if ops:
        shown = ", ".join(ops[:3]) + (f" and {len(ops) - 3} more" if len(ops) > 3 else "")
    elif re.search(r"error: 0x:?14\b", error):  # Error::OperatorMissing, with the log lost
        shown = f"an op of this model ({error[:80]})"
    else:
        return ModelFileError(f"ExecuTorch cannot load the lowered model: {error[:200]}")
    return ProviderUnavailable(
        f"--provider executorch: ExecuTorch's portable kernels lack {shown}, which XNNPACK did not take; "
        "profile this model on another --provider"
    )


def _edge_op(node) -> str | None:
    """An edge-dialect call's ATen name (``<EdgeOpOverload: aten.elu.default>…`` → ``elu``); None for what is
    not an operator (getitem, the delegate call, memory planning's allocations)."""
    match = re.match(r"(?:<EdgeOpOverload: )?(?:aten|dim_order_ops)\.(\w+)\.", str(node.target))
    return match.group(1) if match else None


def partition(program) -> tuple[list[str], list[str]]:
    """The ATen ops inside XNNPACK's delegates, and those left on ExecuTorch's portable kernels."""
    module = program.graph_module
    delegated, portable = [], []
    for node in module.graph.nodes:
        if node.op == "get_attr" and hasattr(getattr(module, node.target, None), "original_module"):
            inner = getattr(module, node.target).original_module.graph_module.graph
            delegated += [op for n in inner.nodes if n.op == "call_function" and (op := _edge_op(n))]
        elif node.op == "call_function" and (op := _edge_op(node)):
            portable.append(op)
    return delegated, portable


def partition_census(
    name: str, delegated: list[str], portable: list[str], *, provider: str, opt_level: str, precision: str
) -> FusionCensus:
    """A census from the partition: an activation inside the delegate is XNNPACK's (``XNNPACK(Gelu)``: it
    may fuse it into the convolution's output clamp where it is one, as for ReLU); one on the portable kernels
    is left on its own, with its decomposition's ops (Mish's log1p and where)."""
    ops = Counter([f"XNNPACK.{op}" for op in delegated] + [f"portable.{op}" for op in portable])
    activation = inductor_code.ACTIVATION
    fused = Counter(f"XNNPACK({activation[op]})" for op in delegated if op in activation)
    plumbing = {*inductor_code.NETWORK, "view_copy", "clone", "permute_copy", "_to_copy"}
    left = dict(Counter(activation.get(op, op) for op in portable if op not in plumbing))
    return FusionCensus(
        name, provider, opt_level, dict(sorted(ops.items())), left, dict(sorted(fused.items())), 0, precision
    )
