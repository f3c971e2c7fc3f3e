"""Activation sites in any ONNX network, and the same network with a candidate activation at each site.

A *site* is where a network applies an activation: one op (Relu, Elu, Gelu…, Clip used as ReLU6) or a
common decomposed pattern — SiLU as ``x·Sigmoid(x)``, GELU as ``0.5·x·(1 + Erf(x/√2))``, Mish as
``x·Tanh(Softplus(x))``. Replacing a site keeps its input and output tensor names, so the rest of the graph
is untouched. A candidate is written as one op where the model's opset has it, else as its standard
decomposition (GELU below opset 20, Mish below 18, HardSwish below 14), and the variant says which.

Nothing here runs a model: pure functions over ``onnx.ModelProto``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx
from onnx import helper, numpy_helper

from actprof import activations
from actprof.errors import UsageError
from actprof.graphs.surgery import prune_unused
from actprof.settings.parse import parse_choices

SINGLE_OPS = activations.site_ops()  # single ops listed as sites
# The op types that count as activation work when profiling an arbitrary network (activations.activation_ops).
ACTIVATION_OPS = activations.activation_ops()


@dataclass(frozen=True)
class Site:
    kind: str  # "Relu", "Clip (ReLU6)", "SiLU (x·Sigmoid(x))", "GELU (Erf form)", "Mish (x·Tanh(Softplus(x)))"
    nodes: tuple[int, ...]  # indices into graph.node
    input: str
    output: str


# --- finding sites ---------------------------------------------------------------------------------


class _Graph:
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

    def sole_consumer(self, name: str, op: str) -> int | None:
        readers = self.consumers.get(name, [])
        if len(readers) == 1 and name not in self.outputs and self.nodes[readers[0]].op_type == op:
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


def find_sites(model: onnx.ModelProto) -> list[Site]:
    """Every activation site, in graph order. Decomposed patterns are matched first, so a Sigmoid inside a
    SiLU is one SiLU site, not a Sigmoid site."""
    g = _Graph(model)
    sites: list[Site] = []
    taken: set[int] = set()
    for matcher in MATCHERS.values():
        for i in range(len(g.nodes)):
            site = matcher(g, i)
            if site and not taken & set(site.nodes):
                sites.append(site)
                taken |= set(site.nodes)
    for i, node in enumerate(g.nodes):
        if i in taken:
            continue
        if node.op_type in SINGLE_OPS:
            sites.append(Site(node.op_type, (i,), node.input[0], node.output[0]))
        elif node.op_type == "Clip" and _is_relu6(g, node):
            sites.append(Site("Clip (ReLU6)", (i,), node.input[0], node.output[0]))
    return sorted(sites, key=lambda s: max(s.nodes))


def _is_relu6(g: _Graph, node: onnx.NodeProto) -> bool:
    attrs = {a.name: a.f for a in node.attribute}
    low = g.scalar(node.input[1]) if len(node.input) > 1 and node.input[1] else attrs.get("min")
    high = g.scalar(node.input[2]) if len(node.input) > 2 and node.input[2] else attrs.get("max")
    return low == 0.0 and high == 6.0


def _silu(g: _Graph, i: int) -> Site | None:
    """Mul(x, Sigmoid(x)), the Sigmoid read by that Mul alone."""
    if g.nodes[i].op_type != "Sigmoid":
        return None
    x = g.nodes[i].input[0]
    mul = g.sole_consumer(g.nodes[i].output[0], "Mul")
    if mul is None or g.other_input(mul, g.nodes[i].output[0]) != x:
        return None
    return Site("SiLU (x·Sigmoid(x))", (i, mul), x, g.nodes[mul].output[0])


def _mish(g: _Graph, i: int) -> Site | None:
    """Mul(x, Tanh(Softplus(x)))."""
    if g.nodes[i].op_type != "Softplus":
        return None
    x = g.nodes[i].input[0]
    tanh = g.sole_consumer(g.nodes[i].output[0], "Tanh")
    mul = g.sole_consumer(g.nodes[tanh].output[0], "Mul") if tanh is not None else None
    if mul is None or g.other_input(mul, g.nodes[tanh].output[0]) != x:
        return None
    return Site("Mish (x·Tanh(Softplus(x)))", (i, tanh, mul), x, g.nodes[mul].output[0])


def _gelu_erf(g: _Graph, i: int) -> Site | None:
    """0.5·x·(1 + Erf(x/√2)), with the 0.5 applied last or to x first (the two orders exporters write)."""
    if g.nodes[i].op_type != "Erf":
        return None
    scale = g.producer.get(g.nodes[i].input[0])
    if scale is None or g.nodes[scale].op_type not in ("Div", "Mul"):
        return None
    x = next((name for name in g.nodes[scale].input if name not in g.constants), None)
    divisor = g.scalar(g.other_input(scale, x) or "")
    expected = math.sqrt(2) if g.nodes[scale].op_type == "Div" else 1 / math.sqrt(2)
    if x is None or divisor is None or not math.isclose(divisor, expected, rel_tol=1e-3):
        return None
    add = g.sole_consumer(g.nodes[i].output[0], "Add")
    times = g.sole_consumer(g.nodes[add].output[0], "Mul") if add is not None else None
    if times is None:
        return None
    other = g.other_input(times, g.nodes[add].output[0])
    if other == x:  # ((x · (1 + erf)) · 0.5)
        half = g.sole_consumer(g.nodes[times].output[0], "Mul")
        if half is None or g.scalar(g.other_input(half, g.nodes[times].output[0]) or "") != 0.5:
            return None
        return Site("GELU (Erf form)", (scale, i, add, times, half), x, g.nodes[half].output[0])
    first = g.producer.get(other or "")
    halves_x = first is not None and g.nodes[first].op_type == "Mul" and g.scalar(g.other_input(first, x) or "") == 0.5
    if halves_x:  # ((0.5 · x) · (1 + erf))
        return Site("GELU (Erf form)", (first, scale, i, add, times), x, g.nodes[times].output[0])
    return None


# The decomposed patterns, by the name the activation table gives them (activations.Activation.patterns).
MATCHERS = {"GELU (Erf form)": _gelu_erf, "Mish (x·Tanh(Softplus(x)))": _mish, "SiLU (x·Sigmoid(x))": _silu}


# --- candidates ------------------------------------------------------------------------------------------


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


def opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def candidate_nodes(name: str, x: str, y: str, *, opset_version: int, tag: str):
    """(nodes, decomposed) computing ``y = candidate(x)``; ``decomposed``: not written as one op."""
    op, attrs, since = CANDIDATES[name]
    if op and opset_version >= since:
        return [helper.make_node(op, [x], [y], name=f"{tag}_{op}", **attrs)], False
    t = f"{tag}_t"
    if name == "silu":
        return (
            [
                helper.make_node("Sigmoid", [x], [t], name=f"{tag}_Sigmoid"),
                helper.make_node("Mul", [x, t], [y], name=f"{tag}_Mul"),
            ],
            False,
        )
    if name == "mish":
        nodes = [
            helper.make_node("Softplus", [x], [f"{t}0"], name=f"{tag}_Softplus"),
            helper.make_node("Tanh", [f"{t}0"], [f"{t}1"], name=f"{tag}_Tanh"),
            helper.make_node("Mul", [x, f"{t}1"], [y], name=f"{tag}_Mul"),
        ]
        return nodes, True
    if name == "hardswish":
        nodes = [
            helper.make_node("HardSigmoid", [x], [t], name=f"{tag}_HardSigmoid", alpha=1 / 6, beta=0.5),
            helper.make_node("Mul", [x, t], [y], name=f"{tag}_Mul"),
        ]
        return nodes, True
    if name == "celu":  # max(0,x) + min(0, α(exp(x/α) − 1)) == Elu for α = 1
        return [helper.make_node("Elu", [x], [y], name=f"{tag}_Elu", alpha=1.0)], True
    if name in ("gelu", "gelu_tanh"):
        return _gelu_decomposed(name, x, y, tag)
    raise UsageError(f"--to {name}: needs opset {since}, the model has {opset_version}")


def _gelu_decomposed(name: str, x: str, y: str, tag: str):
    """GELU without the Gelu op. Its constants are Constant nodes, not initializers: models of IR version < 4
    must list every initializer as a graph input, a Constant node is valid in every version."""
    import numpy as np

    def const(suffix: str, value: float) -> onnx.NodeProto:
        tensor = numpy_helper.from_array(np.array(value, dtype=np.float32), f"{tag}_{suffix}")
        return helper.make_node("Constant", [], [f"{tag}_{suffix}"], name=f"{tag}_{suffix}", value=tensor)

    t = f"{tag}_t"
    if name == "gelu":  # 0.5·x·(1 + erf(x/√2))
        constants = [const("sqrt2", math.sqrt(2)), const("one", 1.0), const("half", 0.5)]
        nodes = [
            helper.make_node("Div", [x, f"{tag}_sqrt2"], [f"{t}0"], name=f"{tag}_Div"),
            helper.make_node("Erf", [f"{t}0"], [f"{t}1"], name=f"{tag}_Erf"),
            helper.make_node("Add", [f"{t}1", f"{tag}_one"], [f"{t}2"], name=f"{tag}_Add"),
            helper.make_node("Mul", [x, f"{t}2"], [f"{t}3"], name=f"{tag}_Mul"),
            helper.make_node("Mul", [f"{t}3", f"{tag}_half"], [y], name=f"{tag}_Half"),
        ]
        return constants + nodes, True
    # tanh form: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    constants = [const("c", 0.044715), const("k", math.sqrt(2 / math.pi)), const("one", 1.0), const("half", 0.5)]
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
    return constants + nodes, True


def swap(model: onnx.ModelProto, sites: list[Site], candidate: str) -> tuple[onnx.ModelProto, bool]:
    """The model with ``candidate`` at each of ``sites`` (weights untouched); and whether the candidate was
    written decomposed. Each replacement goes where the site's last node was, so the graph stays sorted."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    version = opset(model)
    at_last = {max(s.nodes): (n, s) for n, s in enumerate(sites)}
    drop = {i for s in sites for i in s.nodes}
    nodes, decomposed = [], False
    for i, node in enumerate(out.graph.node):
        if i in at_last:
            n, site = at_last[i]
            new, split = candidate_nodes(candidate, site.input, site.output, opset_version=version, tag=f"swap{n}")
            nodes += new
            decomposed |= split
        elif i not in drop:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            nodes.append(copy)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    replaced = {o for s in sites for i in s.nodes for o in model.graph.node[i].output} - {s.output for s in sites}
    kept = [v for v in out.graph.value_info if v.name not in replaced]
    del out.graph.value_info[:]
    out.graph.value_info.extend(kept)
    prune_unused(out)
    return out, decomposed
