"""Where inference time goes and what the optimizer made of a graph: pure functions over files and graphs.

ONNX Runtime's profiler writes a JSON list of events; per-op time is the sum of ``cat == "Node"`` events
named ``*_kernel_time``, grouped by op type and provider. The fusion census reads the graph a runtime
optimized: which activation nodes survived on their own, which were fused into a convolution or GEMM, how
many layout reorders were inserted. Nothing here runs a model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from actprof.errors import ModelFileError
from actprof.graphs import surgery as graph
from actprof.schema.profiling import FusionCensus, OpProfile, OpTime

if TYPE_CHECKING:
    import onnx

LAYOUT_OPS = frozenset({"ReorderInput", "ReorderOutput", "Transpose", "Reorder"})
# Quantization plumbing and quantized network ops (ONNX Runtime's int8 graph; OpenVINO's int8 layers).
QUANTIZATION_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QGemm", "QLinearMatMul", "NhwcMaxPool"}
    | {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "FakeQuantize", "Convert"}
)
# OpenVINO's executed layer types that are the network itself (its runtime model and performance counters).
OPENVINO_NETWORK = frozenset(
    {"Input", "Output", "Parameter", "Result", "Const", "Convolution", "FullyConnected", "Pooling", "MatMul"}
)
# The network around the activations once a runtime has optimized it. Every other op belongs to the
# activation: ORT rewrites some activations at load time (Mish into Softplus/Tanh/Mul, SiLU into QuickGelu),
# so the exported op names alone would miss them.
NETWORK_OPS = (
    graph.STRUCTURAL_OPS
    | LAYOUT_OPS
    | QUANTIZATION_OPS
    | OPENVINO_NETWORK
    | {"FusedConv", "FusedGemm", "MemcpyFromHost", "MemcpyToHost"}
)


def is_activation_op(op_type: str) -> bool:
    """In actprof's own CNN: every op that is not the network is the activation's (decompositions included)."""
    op = op_type.split(".")[-1]
    # OpenVINO names its kernels' variants (FullyConnectedQuantizedLegacy…): those are still the network
    return op not in NETWORK_OPS and not op.startswith(("Convolution", "FullyConnected"))


Classifier = Callable[[str], bool]


def classifier(activation_ops: frozenset[str] | None) -> Classifier:
    """``is_activation_op`` for actprof's models; for any other network (residual Adds, BatchNormalization…),
    membership in an explicit list of activation op types."""
    if activation_ops is None:
        return is_activation_op
    return lambda op_type: op_type.split(".")[-1] in activation_ops


# --- ONNX Runtime's profile ------------------------------------------------------------------------


def _kernel_events(events: list) -> Iterator[tuple[str, str, str, object]]:
    """(node name, op type, provider, duration) of every ``cat == "Node"`` ``*_kernel_time`` event."""
    for event in events:
        if not isinstance(event, dict) or event.get("cat") != "Node":
            continue
        name, args = event.get("name"), event.get("args")
        if not (isinstance(name, str) and name.endswith("_kernel_time") and isinstance(args, dict)):
            continue
        op, provider = args.get("op_name"), args.get("provider")
        if isinstance(op, str) and isinstance(provider, str):
            yield name.removesuffix("_kernel_time"), op, provider, event.get("dur")


def parse_profile(events: object) -> dict[tuple[str, str], tuple[float, int]]:
    """ORT profile events → {(op_type, provider): (total µs, kernel events)}; ModelFileError if malformed.

    Only ``cat == "Node"`` events named ``*_kernel_time`` count; anything else is ignored.
    """
    if not isinstance(events, list):
        raise ModelFileError("the ORT profile is not a JSON list of events")
    totals: dict[tuple[str, str], tuple[float, int]] = {}
    for name, op, provider, dur in _kernel_events(events):
        if not _is_duration(dur):
            raise ModelFileError(f"the ORT profile has a bad duration for {name!r}_kernel_time: {str(dur)[:40]}")
        total, count = totals.get((op, provider), (0.0, 0))
        totals[(op, provider)] = (total + float(dur), count + 1)
    return totals


def _is_duration(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and value >= 0
    except OverflowError:  # an integer past the float range
        return False


def node_providers(events: object) -> dict[str, str]:
    """Node name → provider it ran on, from the same profile events."""
    if not isinstance(events, list):
        return {}
    return {name: provider for name, _op, provider, _dur in _kernel_events(events)}


def load_profile_file(path: Path) -> list:
    try:
        events = json.loads(Path(path).read_bytes())
    except (OSError, ValueError, RecursionError):
        raise ModelFileError(f"{path} is not a readable ORT profile (JSON)") from None
    parse_profile(events)
    return events


def op_profile_of(
    totals: dict[tuple[str, str], tuple[float, int]],
    *,
    model: str,
    provider: str,
    batch: int,
    opt_level: str,
    runs: int,
    foreign_nodes: list[str],
    is_activation: Classifier = is_activation_op,
) -> OpProfile:
    """Per-op totals over ``runs`` recorded runs → time per run, share, and the activation's part."""
    grand = sum(total for total, _ in totals.values()) / runs
    ops = sorted(
        (
            OpTime(op, prov, count // runs, total / runs, (total / runs) / grand if grand else 0.0)
            for (op, prov), (total, count) in totals.items()
        ),
        key=lambda o: -o.us_per_run,
    )
    act_us = sum(o.us_per_run for o in ops if is_activation(o.op_type))
    return OpProfile(
        model=model,
        provider=provider,
        batch=batch,
        opt_level=opt_level,
        runs=runs,
        total_us_per_run=grand,
        ops=ops,
        activation_us_per_run=act_us,
        activation_share=act_us / grand if grand else 0.0,
        layout_us_per_run=sum(o.us_per_run for o in ops if o.op_type in LAYOUT_OPS),
        foreign_nodes=foreign_nodes,
    )


# --- the optimized graph ---------------------------------------------------------------------------


def census_of_optimized(
    name: str,
    optimized: onnx.ModelProto,
    *,
    provider: str,
    opt_level: str,
    is_activation: Classifier = is_activation_op,
) -> FusionCensus:
    ops: dict[str, int] = {}
    fused: dict[str, int] = {}
    for node in optimized.graph.node:
        key = _qualified(node)
        ops[key] = ops.get(key, 0) + 1
        fused_act = _fused_activation(node)
        if fused_act:
            label = f"{key}({fused_act})"
            fused[label] = fused.get(label, 0) + 1
    left = {op: n for op, n in ops.items() if is_activation(op)}
    reorders = sum(n for op, n in ops.items() if op.split(".")[-1] in {"ReorderInput", "ReorderOutput"})
    wrapped = _qdq_wrapped(optimized, is_activation)
    return FusionCensus(
        name, provider, opt_level, dict(sorted(ops.items())), left, fused, reorders, qdq_wrapped=wrapped
    )


def _qdq_wrapped(model: onnx.ModelProto, is_activation: Classifier = is_activation_op) -> dict[str, int]:
    """Activation nodes that a quantized graph runs in float between DequantizeLinear and QuantizeLinear."""
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    wrapped: dict[str, int] = {}
    for node in model.graph.node:
        if not is_activation(_qualified(node)) or not node.input:
            continue
        fed_by_dq = producer.get(node.input[0]) == "DequantizeLinear"
        feeds_q = any(op == "QuantizeLinear" for out in node.output for op in consumers.get(out, []))
        if fed_by_dq and feeds_q:
            wrapped[node.op_type] = wrapped.get(node.op_type, 0) + 1
    return wrapped


def activation_counts(model: onnx.ModelProto) -> dict[str, int]:
    """The activation ops of a graph as given (before any runtime optimizes it)."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if is_activation_op(_qualified(node)):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def with_quantization_folding(
    census: FusionCensus, fp32_counts: dict[str, int], int8_counts: dict[str, int]
) -> FusionCensus:
    """An int8 census, with the activations that quantization folded away named as ``int8(Relu)``.

    ORT's quantizer drops a Relu after a Conv or Gemm (the output's quantization range starts at 0), so the
    int8 graph no longer has it: a site of the fp32 graph missing from the int8 graph *as quantized* (before
    any runtime rewrote it: ORT turns Mish into Softplus/Tanh/Mul, which is no folding) was folded into the
    quantized op before it."""
    fused = dict(census.fused)
    for op, sites in fp32_counts.items():
        folded = sites - int8_counts.get(op, 0)
        if folded > 0:
            fused[f"int8({op})"] = folded
    return replace(census, fused=fused)


def census_of_runtime_layers(
    name: str,
    layers: list[tuple[str, list[str]]],
    *,
    provider: str,
    opt_level: str,
    is_activation: Classifier = is_activation_op,
) -> FusionCensus:
    """OpenVINO's runtime model → census. ``layers``: each executed layer's type with the ONNX op types of
    the original nodes it absorbed (an Elu absorbed by a Convolution is a fusion; one absorbed by an Eltwise
    layer still runs on its own)."""
    ops: dict[str, int] = {}
    fused: dict[str, int] = {}
    left: dict[str, int] = {}
    wrapped: dict[str, int] = {}
    for layer_type, originals in layers:
        if layer_type == "Const":
            continue
        ops[layer_type] = ops.get(layer_type, 0) + 1
        activations = [op for op in originals if is_activation(op)]
        network_layer = not is_activation_op(layer_type)  # OpenVINO's own layer types: Eltwise runs alone
        for op in activations:
            if network_layer:
                fused[f"{layer_type}({op})"] = fused.get(f"{layer_type}({op})", 0) + 1
            else:
                left[op] = left.get(op, 0) + 1
                if "DequantizeLinear" in originals:
                    wrapped[op] = wrapped.get(op, 0) + 1
        if not network_layer and not originals and is_activation(layer_type):  # untraceable: say its type
            left[layer_type] = left.get(layer_type, 0) + 1
    reorders = ops.get("Reorder", 0)
    return FusionCensus(
        name, provider, opt_level, dict(sorted(ops.items())), left, fused, reorders, qdq_wrapped=wrapped
    )


def _qualified(node: onnx.NodeProto) -> str:
    domain = node.domain.removeprefix("com.microsoft").strip(".")
    return f"{domain}.{node.op_type}" if domain else node.op_type


def _fused_activation(node: onnx.NodeProto) -> str | None:
    for attr in node.attribute:
        if attr.name == "activation" and attr.s:
            return attr.s.decode("utf-8", "replace")
    return None
