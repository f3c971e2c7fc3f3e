"""How exporters write an activation: the decomposed patterns ``graphs.sites`` recognises as one site.

Each matcher looks at one node and returns the whole pattern it anchors, or None. The patterns are the ones
real exporters write: SiLU as ``x·Sigmoid(x)``; GELU as ``0.5·x·(1 + Erf(x/√2))`` and its tanh approximation
(``x³`` as a Pow or two Muls: PyTorch below opset 20, GPT-2's ``gelu_new``), the 0.5 applied last or to x
first; Mish as ``x·Tanh(Softplus(x))``; QuickGELU as ``x·Sigmoid(1.702·x)``; HardSwish as
``x·Clip(x + 3, 0, 6) / 6`` (Paddle, TensorFlow) in either order of its Mul and Div (or Mul by 1/6), or as
``x·HardSigmoid(x)`` with α = 1/6 (PyTorch below opset 14); and HardSigmoid alone as ``Clip(x + 3, 0, 6)/6``
(Keras' ``hard_sigmoid`` through tf2onnx, a squeeze-excitation gate written out). A pattern's inner nodes must
be read by the pattern alone, so a Sigmoid whose output is also used elsewhere is not swallowed.

Nothing here runs a model: pure functions over ``onnx.ModelProto``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import onnx
from onnx import numpy_helper


@dataclass(frozen=True)
class Site:
    kind: str  # "Relu", "Clip (ReLU6)", "SiLU (x·Sigmoid(x))", "GELU (Erf form)"…
    nodes: tuple[int, ...]  # indices into graph.node
    input: str
    output: str
    role: str = "activation"  # or "gate", "head" (graphs.sites.ROLES)


class GraphIndex:
    """Producer/consumer lookups and constant values over one graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        g = model.graph
        self.nodes = list(g.node)
        self.producer = {out: i for i, n in enumerate(g.node) for out in n.output}
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(g.node):
            for name in n.input:
                self.consumers.setdefault(name, []).append(i)
        self.constants = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for n in g.node:
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
                self.constants[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        self.outputs = {o.name for o in g.output}

    def op(self, index: int | None) -> str | None:
        return None if index is None else self.nodes[index].op_type

    def output(self, index: int) -> str:
        return self.nodes[index].output[0]

    def sole_consumer(self, name: str, *ops: str) -> int | None:
        readers = self.consumers.get(name, [])
        if len(readers) == 1 and name not in self.outputs and self.nodes[readers[0]].op_type in ops:
            return readers[0]
        return None

    def scalar(self, name: str) -> float | None:
        value = self.constants.get(name)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def other_input(self, index: int, name: str) -> str | None:
        inputs = list(self.nodes[index].input)
        if len(inputs) != 2 or name not in inputs:
            return None
        return inputs[1] if inputs[0] == name else inputs[0]

    def times_input(self, name: str, x: str) -> int | None:
        """The Mul that alone reads ``name`` and multiplies it by ``x`` (the ``x·f(x)`` of SiLU, Mish…)."""
        mul = self.sole_consumer(name, "Mul")
        return mul if mul is not None and self.other_input(mul, name) == x else None

    def scales_by(self, index: int | None, name: str, factor: float) -> bool:
        """Node ``index`` computes ``name · factor`` (a Mul by it, or a Div by its inverse)."""
        if index is None or self.op(index) not in ("Mul", "Div"):
            return False
        if self.op(index) == "Div" and list(self.nodes[index].input)[:1] != [name]:
            return False
        constant = self.scalar(self.other_input(index, name) or "")
        expected = factor if self.op(index) == "Mul" else 1 / factor
        return constant is not None and math.isclose(constant, expected, rel_tol=1e-3)


def is_relu6(g: GraphIndex, node: onnx.NodeProto) -> bool:
    """A Clip to [0, 6], its bounds as attributes (opset < 11) or constant inputs."""
    attrs = {a.name: a.f for a in node.attribute}
    low = g.scalar(node.input[1]) if len(node.input) > 1 and node.input[1] else attrs.get("min")
    high = g.scalar(node.input[2]) if len(node.input) > 2 and node.input[2] else attrs.get("max")
    return low == 0.0 and high == 6.0


def _silu(g: GraphIndex, i: int) -> Site | None:
    """Mul(x, Sigmoid(x)), the Sigmoid read by that Mul alone."""
    if g.op(i) != "Sigmoid":
        return None
    x = g.nodes[i].input[0]
    mul = g.times_input(g.output(i), x)
    return Site("SiLU (x·Sigmoid(x))", (i, mul), x, g.output(mul)) if mul is not None else None


def _quick_gelu(g: GraphIndex, i: int) -> Site | None:
    """Mul(x, Sigmoid(Mul(x, 1.702)))."""
    if g.op(i) != "Sigmoid":
        return None
    scale = g.producer.get(g.nodes[i].input[0])
    x = next((name for name in g.nodes[scale].input if name not in g.constants), None) if scale is not None else None
    if x is None or not g.scales_by(scale, x, 1.702) or g.sole_consumer(g.nodes[i].input[0], "Sigmoid") != i:
        return None
    mul = g.times_input(g.output(i), x)
    return Site("QuickGELU (x·Sigmoid(1.702x))", (scale, i, mul), x, g.output(mul)) if mul is not None else None


def _mish(g: GraphIndex, i: int) -> Site | None:
    """Mul(x, Tanh(Softplus(x)))."""
    if g.op(i) != "Softplus":
        return None
    x = g.nodes[i].input[0]
    tanh = g.sole_consumer(g.output(i), "Tanh")
    mul = g.times_input(g.output(tanh), x) if tanh is not None else None
    return Site("Mish (x·Tanh(Softplus(x)))", (i, tanh, mul), x, g.output(mul)) if mul is not None else None


def _gelu_erf(g: GraphIndex, i: int) -> Site | None:
    """0.5·x·(1 + Erf(x/√2)), with the 0.5 applied last or to x first (the two orders exporters write)."""
    if g.op(i) != "Erf":
        return None
    scale = g.producer.get(g.nodes[i].input[0])
    if scale is None or g.op(scale) not in ("Div", "Mul"):
        return None
    x = next((name for name in g.nodes[scale].input if name not in g.constants), None)
    if x is None or not g.scales_by(scale, x, 1 / math.sqrt(2)):
        return None
    tail = _times_half_x_plus(g, g.output(i), x)
    if tail is None:
        return None
    return Site("GELU (Erf form)", (scale, i, *tail[:-1]), x, tail[-1])


def _gelu_tanh(g: GraphIndex, i: int) -> Site | None:
    """0.5·x·(1 + Tanh(√(2/π)·(x + 0.044715·x³))), x³ as Pow(x, 3) or x·x·x: PyTorch's tanh GELU below opset 20,
    and GPT-2's ``gelu_new``. Anchored at the Tanh."""
    if g.op(i) != "Tanh":
        return None
    scale = g.producer.get(g.nodes[i].input[0])
    inner = next((n for n in g.nodes[scale].input if n not in g.constants), None) if scale is not None else None
    if inner is None or not g.scales_by(scale, inner, math.sqrt(2 / math.pi)):
        return None
    add = g.producer.get(inner)
    if g.op(add) != "Add":
        return None
    for x in g.nodes[add].input:
        cubic = _cubic(g, g.other_input(add, x) or "", x)
        if cubic is not None:
            break
    else:
        return None
    tail = _times_half_x_plus(g, g.output(i), x)
    if tail is None:
        return None
    return Site("GELU (tanh form)", (*cubic, add, scale, i, *tail[:-1]), x, tail[-1])


def _cubic(g: GraphIndex, name: str, x: str) -> tuple[int, ...] | None:
    """The nodes computing ``name`` = 0.044715·x³ (a Mul by the constant of Pow(x, 3) or of x·x·x)."""
    times_c = g.producer.get(name)
    cube_name = next((n for n in g.nodes[times_c].input if n not in g.constants), None) if times_c is not None else None
    if cube_name is None or not g.scales_by(times_c, cube_name, 0.044715):
        return None
    cube = g.producer.get(cube_name)
    if g.op(cube) == "Pow" and g.nodes[cube].input[0] == x and g.scalar(g.nodes[cube].input[1]) == 3.0:
        return (cube, times_c)
    square = g.producer.get(g.other_input(cube, x) or "") if g.op(cube) == "Mul" else None
    if g.op(square) == "Mul" and list(g.nodes[square].input) == [x, x]:
        return (square, cube, times_c)
    return None


def _times_half_x_plus(g: GraphIndex, name: str, x: str) -> tuple[int | str, ...] | None:
    """The tail both GELU forms share: 0.5·x·(1 + ``name``), the 0.5 applied last or to x first. The nodes and,
    last, the output."""
    add = g.sole_consumer(name, "Add")
    if add is None or g.scalar(g.other_input(add, name) or "") != 1.0:
        return None
    times = g.sole_consumer(g.output(add), "Mul")
    if times is None:
        return None
    other = g.other_input(times, g.output(add))
    if other == x:  # ((x · (1 + f)) · 0.5)
        half = g.sole_consumer(g.output(times), "Mul")
        if half is None or g.scalar(g.other_input(half, g.output(times)) or "") != 0.5:
            return None
        return (add, times, half, g.output(half))
    first = g.producer.get(other or "")
    if first is not None and g.op(first) == "Mul" and g.scalar(g.other_input(first, x) or "") == 0.5:
        return (first, add, times, g.output(times))  # ((0.5 · x) · (1 + f))
    return None


def _relu6_of_x_plus_3(g: GraphIndex, i: int) -> tuple[str, int] | tuple[None, None]:
    """Node ``i`` adds 3 to some x and a Clip to [0, 6] alone reads the sum: x and the Clip."""
    if g.op(i) != "Add":
        return None, None
    x = next((name for name in g.nodes[i].input if name not in g.constants), None)
    if x is None or g.scalar(g.other_input(i, x) or "") != 3.0:
        return None, None
    clip = g.sole_consumer(g.output(i), "Clip")
    return (x, clip) if clip is not None and is_relu6(g, g.nodes[clip]) else (None, None)


def _hardswish_clip(g: GraphIndex, i: int) -> Site | None:
    """x·Clip(x + 3, 0, 6)/6: Add(x, 3) → Clip → then Mul(x, ·) → /6, or /6 → Mul(x, ·)."""
    x, clip = _relu6_of_x_plus_3(g, i)
    if clip is None:
        return None
    step = g.sole_consumer(g.output(clip), "Mul", "Div")
    if step is None:
        return None
    if g.op(step) == "Mul" and g.other_input(step, g.output(clip)) == x:  # (x · clip) / 6
        last = g.sole_consumer(g.output(step), "Mul", "Div")
        nodes = (i, clip, step, last)
        ok = g.scales_by(last, g.output(step), 1 / 6)
    else:  # x · (clip / 6)
        last = g.sole_consumer(g.output(step), "Mul")
        nodes = (i, clip, step, last)
        ok = g.scales_by(step, g.output(clip), 1 / 6) and last is not None
        ok = ok and g.other_input(last, g.output(step)) == x
    if not ok or last is None:
        return None
    return Site("HardSwish (x·Clip(x+3, 0, 6)/6)", nodes, x, g.output(last))


def _hard_sigmoid_clip(g: GraphIndex, i: int) -> Site | None:
    """Clip(x + 3, 0, 6)/6, by a Div or a Mul by 1/6. Matched after HardSwish, whose ``x·`` it would be the
    inner part of."""
    x, clip = _relu6_of_x_plus_3(g, i)
    last = g.sole_consumer(g.output(clip), "Mul", "Div") if clip is not None else None
    if last is None or not g.scales_by(last, g.output(clip), 1 / 6):
        return None
    return Site("HardSigmoid (Clip(x+3, 0, 6)/6)", (i, clip, last), x, g.output(last))


def _hardswish_hard_sigmoid(g: GraphIndex, i: int) -> Site | None:
    """Mul(x, HardSigmoid(x)) with α = 1/6, β = 0.5: PyTorch's HardSwish below opset 14."""
    if g.op(i) != "HardSigmoid":
        return None
    attrs = {a.name: a.f for a in g.nodes[i].attribute}
    if not (math.isclose(attrs.get("alpha", 0.2), 1 / 6, rel_tol=1e-4) and attrs.get("beta", 0.5) == 0.5):
        return None
    x = g.nodes[i].input[0]
    mul = g.times_input(g.output(i), x)
    return Site("HardSwish (x·HardSigmoid(x))", (i, mul), x, g.output(mul)) if mul is not None else None


# The decomposed patterns, by the name the activation table gives them (activations.Activation.patterns).
MATCHERS: dict[str, Callable[[GraphIndex, int], Site | None]] = {
    "GELU (Erf form)": _gelu_erf,
    "GELU (tanh form)": _gelu_tanh,
    "Mish (x·Tanh(Softplus(x)))": _mish,
    "QuickGELU (x·Sigmoid(1.702x))": _quick_gelu,
    "SiLU (x·Sigmoid(x))": _silu,
    "HardSwish (x·Clip(x+3, 0, 6)/6)": _hardswish_clip,
    "HardSwish (x·HardSigmoid(x))": _hardswish_hard_sigmoid,
    "HardSigmoid (Clip(x+3, 0, 6)/6)": _hard_sigmoid_clip,  # after HardSwish's Clip form: its inner part
}
