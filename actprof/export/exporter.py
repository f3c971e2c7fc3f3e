"""PyTorch → ONNX: the exporter call, with a dynamic batch dimension, and quiet.

The exporter and opset are recorded with every model (``verify``): a decomposed activation (GELU below
opset 20, Softplus's threshold branch) must never be mistaken for the cost of the activation itself.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import TYPE_CHECKING

from actprof.errors import ExportFailed
from actprof.export.config import DEFAULT_OPSET
from actprof.graphs.surgery import INPUT_NAME, OUTPUT_NAME
from actprof.runtimes.base import quiet

if TYPE_CHECKING:
    import onnx
    import torch


def to_onnx(model: torch.nn.Module, *, opset: int = DEFAULT_OPSET, exporter: str = "dynamo") -> onnx.ModelProto:
    """The model as an ONNX proto with a dynamic batch dimension (fp32, eval mode); ExportFailed, in one line,
    where the exporter cannot export it."""
    try:
        return _export(model, opset=opset, exporter=exporter)
    except Exception as error:  # torch.export's errors run to pages: the innermost cause's first line
        cause = _first_line(_innermost(error))
        other = "torchscript" if exporter == "dynamo" else "dynamo"
        raise ExportFailed(
            f"the {exporter} exporter cannot export this network to ONNX ({cause[:300]}); try --exporter {other} "
            "or change the network"
        ) from None


def _innermost(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _first_line(error: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


def _export(model: torch.nn.Module, *, opset: int, exporter: str) -> onnx.ModelProto:
    import onnx
    import torch

    model = model.eval().float()
    example = torch.rand(2, 1, 28, 28)
    # The exporters are chatty (progress lines, deprecation warnings): keep the user's terminal clean.
    with quiet():
        if exporter == "dynamo":
            with torchlib_registry_reused():
                program = torch.onnx.export(
                    model,
                    (example,),
                    dynamo=True,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_shapes=({0: torch.export.Dim("batch")},),  # by position: any forward signature
                    verbose=False,
                )
            return without_stack_traces(program.model_proto)
        buffer = io.BytesIO()
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
        return onnx.load_from_string(buffer.getvalue())


@contextlib.contextmanager
def torchlib_registry_reused():
    """Within it, ``torch.onnx.export`` reuses one torchlib registry per opset instead of building it again
    on every call (~1,000 ATen functions looked up: 0.4 s a call on the AVX-512 EPYC, ~1 s on Zen 3, a third
    to a half of exporting the seed CNN; 14 exports in ``actprof run``). The exporter only reads the
    registry; actprof passes no custom translations, which would be written into it. torch's exporter is
    private API: where it is not as torch 2.13 has it, every export builds its own registry, as before."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        yield
        return
    original = _registration.ONNXRegistry.__dict__.get("from_torchlib")
    if not isinstance(original, classmethod):
        yield
        return

    def reused(cls, *args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        if key not in _REGISTRIES:
            _REGISTRIES[key] = original.__func__(cls, *args, **kwargs)
        return _REGISTRIES[key]

    _registration.ONNXRegistry.from_torchlib = classmethod(reused)
    try:
        yield
    finally:
        _registration.ONNXRegistry.from_torchlib = original


_REGISTRIES: dict[tuple, object] = {}  # from_torchlib's arguments → the registry built with them


STACK_TRACE = "pkg.torch.onnx.stack_trace"


def without_stack_traces(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without the Python stack trace the dynamo exporter writes into each node's metadata: the
    absolute path of the source that built the network, with its line numbers. A shipped file should not carry
    the path of whoever exported it, and without it the same network exports to the same bytes from any
    checkout or environment (the class and scope names, which say which module each node came from, stay)."""
    for graph in (model.graph, *(f for f in model.functions)):
        for node in graph.node:
            kept = [p for p in node.metadata_props if p.key != STACK_TRACE]
            if len(kept) != len(node.metadata_props):
                del node.metadata_props[:]
                node.metadata_props.extend(kept)
    return model
