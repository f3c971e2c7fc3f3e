"""What ``swap`` can put at a site, written as ONNX nodes: ``y = candidate(x)``.

A candidate is written as one op where the model's opset has it, else as its standard decomposition (GELU
below opset 20, Mish below 18, HardSwish below 14), and the caller is told which. Candidates with no single op
in any opset (SiLU, QuickGELU, ReLU6 as a Clip) are always written as the ops exporters write for them.
Constants are Constant nodes, not initializers: models of IR version < 4 must list every initializer as a
graph input, a Constant node is valid in every version.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from actprof import activations
from actprof.errors import UsageError
from actprof.settings.parse import parse_choices


def _candidate(act: activations.Activation) -> tuple[str, dict[str, object], int]:
    """(single op or "", its attributes with the activation's default parameter, the first opset with it)."""
    form = act.onnx
    attrs = {**form.attrs, **({form.param_attr: act.default_param} if form.param_attr else {})}
    return form.op or "", attrs, form.since


# name -> (single op, its attributes, the first opset that has it); decompositions below that opset
CANDIDATES: dict[str, tuple[str, dict[str, object], int]] = {
    name: _candidate(act) for name, act in activations.candidates().items()
}


def parse_candidates(spec: str) -> list[str]:
    return parse_choices(spec, list(CANDIDATES), "--to", what="candidate")


def candidate_nodes(name: str, x: str, y: str, *, opset_version: int, tag: str):
    """(nodes, decomposed) computing ``y = candidate(x)``; ``decomposed``: not written as the single op the
    activation has in newer opsets."""
    op, attrs, since = CANDIDATES[name]
    if op and opset_version >= since:
        return [helper.make_node(op, [x], [y], name=f"{tag}_{op}", **attrs)], False
    t = f"{tag}_t"
    if name == "silu":
        return [_node("Sigmoid", [x], [t], tag), _node("Mul", [x, t], [y], tag)], False
    if name == "quick_gelu":
        scale = _const(tag, "k", 1.702)
        nodes = [_node("Mul", [x, scale.output[0]], [f"{t}0"], tag, "Scale"), _node("Sigmoid", [f"{t}0"], [t], tag)]
        return [scale, *nodes, _node("Mul", [x, t], [y], tag)], False
    if name == "relu6":
        return _relu6(x, y, tag, opset_version), False
    if name == "mish":
        nodes = [
            _node("Softplus", [x], [f"{t}0"], tag),
            _node("Tanh", [f"{t}0"], [f"{t}1"], tag),
            _node("Mul", [x, f"{t}1"], [y], tag),
        ]
        return nodes, True
    if name == "hardswish":
        hard_sigmoid = helper.make_node("HardSigmoid", [x], [t], name=f"{tag}_HardSigmoid", alpha=1 / 6, beta=0.5)
        return [hard_sigmoid, _node("Mul", [x, t], [y], tag)], True
    if name == "celu":  # max(0,x) + min(0, α(exp(x/α) − 1)) == Elu for α = 1
        return [helper.make_node("Elu", [x], [y], name=f"{tag}_Elu", alpha=1.0)], True
    if name in ("gelu", "gelu_tanh"):
        return _gelu_decomposed(name, x, y, tag), True
    raise UsageError(f"--to {name}: needs opset {since}, the model has {opset_version}")


def _node(op: str, inputs: list[str], outputs: list[str], tag: str, suffix: str = "") -> onnx.NodeProto:
    return helper.make_node(op, inputs, outputs, name=f"{tag}_{suffix or op}")


def _const(tag: str, suffix: str, value: float) -> onnx.NodeProto:
    tensor = numpy_helper.from_array(np.array(value, dtype=np.float32), f"{tag}_{suffix}")
    return helper.make_node("Constant", [], [f"{tag}_{suffix}"], name=f"{tag}_{suffix}", value=tensor)


def _relu6(x: str, y: str, tag: str, opset_version: int) -> list[onnx.NodeProto]:
    """Clip to [0, 6]: bounds as inputs from opset 11, as attributes before."""
    if opset_version < 11:
        return [helper.make_node("Clip", [x], [y], name=f"{tag}_Clip", min=0.0, max=6.0)]
    low, high = _const(tag, "low", 0.0), _const(tag, "high", 6.0)
    return [low, high, _node("Clip", [x, low.output[0], high.output[0]], [y], tag)]


def _gelu_decomposed(name: str, x: str, y: str, tag: str) -> list[onnx.NodeProto]:
    """GELU without the Gelu op: the Erf form exporters write, or the tanh approximation."""
    t = f"{tag}_t"
    if name == "gelu":  # 0.5·x·(1 + erf(x/√2))
        constants = [_const(tag, "sqrt2", math.sqrt(2)), _const(tag, "one", 1.0), _const(tag, "half", 0.5)]
        nodes = [
            helper.make_node("Div", [x, f"{tag}_sqrt2"], [f"{t}0"], name=f"{tag}_Div"),
            helper.make_node("Erf", [f"{t}0"], [f"{t}1"], name=f"{tag}_Erf"),
            helper.make_node("Add", [f"{t}1", f"{tag}_one"], [f"{t}2"], name=f"{tag}_Add"),
            helper.make_node("Mul", [x, f"{t}2"], [f"{t}3"], name=f"{tag}_Mul"),
            helper.make_node("Mul", [f"{t}3", f"{tag}_half"], [y], name=f"{tag}_Half"),
        ]
        return constants + nodes
    # tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    constants = [
        _const(tag, "c", 0.044715),
        _const(tag, "k", math.sqrt(2 / math.pi)),
        _const(tag, "one", 1.0),
        _const(tag, "half", 0.5),
    ]
    nodes = [
        helper.make_node("Mul", [x, x], [f"{t}0"], name=f"{tag}_Sq"),
        helper.make_node("Mul", [f"{t}0", x], [f"{t}1"], name=f"{tag}_Cube"),
        helper.make_node("Mul", [f"{t}1", f"{tag}_c"], [f"{t}2"], name=f"{tag}_C"),
        helper.make_node("Add", [x, f"{t}2"], [f"{t}3"], name=f"{tag}_Inner"),
        helper.make_node("Mul", [f"{t}3", f"{tag}_k"], [f"{t}4"], name=f"{tag}_K"),
        helper.make_node("Tanh", [f"{t}4"], [f"{t}5"], name=f"{tag}_Tanh"),
        helper.make_node("Add", [f"{t}5", f"{tag}_one"], [f"{t}6"], name=f"{tag}_Add"),
        helper.make_node("Mul", [x, f"{t}6"], [f"{t}7"], name=f"{tag}_Mul"),
        helper.make_node("Mul", [f"{t}7", f"{tag}_half"], [y], name=f"{tag}_Half"),
    ]
    return constants + nodes
