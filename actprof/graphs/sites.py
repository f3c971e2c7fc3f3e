"""Activation sites in any ONNX network, their roles, and the same network with a candidate at each site.

A *site* is where a network applies an activation: one op (Relu, Elu, Gelu…, Clip used as ReLU6) or a
decomposed pattern an exporter writes (``graphs.patterns``: SiLU as ``x·Sigmoid(x)``, GELU's Erf form,
HardSwish as ``x·Clip(x+3, 0, 6)/6``…). Each site has a *role*: a hidden ``activation`` (what ``swap``
replaces by default), a ``gate`` (a Sigmoid whose output scales another tensor, as in squeeze-excitation) or
a ``head`` (a Sigmoid, Tanh or Softmax that squashes what the network outputs). Replacing a site keeps its
input and output tensor names, so the rest of the graph is untouched; the candidates are written by
``graphs.candidates``.

Nothing here runs a model: pure functions over ``onnx.ModelProto``.
"""

from __future__ import annotations

import onnx

from actprof import activations
from actprof.graphs.candidates import candidate_nodes
from actprof.graphs.patterns import MATCHERS, GraphIndex, Site, is_relu6
from actprof.graphs.surgery import prune_unused
from actprof.settings.parse import parse_choices

__all__ = ["ACTIVATION_OPS", "ROLES", "SINGLE_OPS", "Site", "find_sites", "opset", "parse_roles", "swap"]

SINGLE_OPS = activations.site_ops()  # single ops listed as sites
# The op types that count as activation work when profiling an arbitrary network (activations.activation_ops).
ACTIVATION_OPS = activations.activation_ops()

ROLES = activations.SITE_ROLES
GATE_OPS = frozenset({"Sigmoid", "HardSigmoid"})  # a [0, 1] value that scales another tensor
HEAD_OPS = frozenset({"Sigmoid", "HardSigmoid", "Tanh", "Softmax", "LogSoftmax"})
HEAD_ONLY_OPS = frozenset({"Softmax", "LogSoftmax"})  # a site only as a head: attention's Softmax is no activation
# Ops that move or reshape a gate's values on their way to the Mul that applies it.
RESHAPING_OPS = frozenset({"Reshape", "Transpose", "Unsqueeze", "Squeeze", "Flatten", "Expand", "Cast", "Identity"})
# What each decomposed pattern computes, as an op (a HardSigmoid written out can be a gate or a head too).
_PATTERN_OPS = {kind: row.onnx.op for kind, row in activations.patterns().items()}
# Ops that compute learned features: a squashing op with one of these downstream is no output head.
LEARNED_OPS = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "ConvInteger",
        "QLinearConv",
        "Gemm",
        "MatMul",
        "MatMulInteger",
        "QLinearMatMul",
        "Einsum",
        "LSTM",
        "GRU",
        "RNN",
        "Attention",
        "MultiHeadAttention",
    }
)


def find_sites(model: onnx.ModelProto) -> list[Site]:
    """Every activation site, in graph order, with its role. Decomposed patterns are matched first, so a
    Sigmoid inside a SiLU is one SiLU site, not a Sigmoid site."""
    g = GraphIndex(model)
    found: list[Site] = []
    taken: set[int] = set()
    for matcher in MATCHERS.values():
        for i in range(len(g.nodes)):
            site = matcher(g, i)
            if site and not taken & set(site.nodes):
                found.append(site)
                taken |= set(site.nodes)
    for i, node in enumerate(g.nodes):
        if i in taken or not node.input:
            continue
        if node.op_type in SINGLE_OPS | HEAD_ONLY_OPS:
            found.append(Site(node.op_type, (i,), node.input[0], node.output[0]))
        elif node.op_type == "Clip" and is_relu6(g, node):
            found.append(Site("Clip (ReLU6)", (i,), node.input[0], node.output[0]))
    with_roles = [_with_role(g, site) for site in found]
    listed = [s for s in with_roles if s.kind not in HEAD_ONLY_OPS or s.role == "head"]
    return sorted(listed, key=lambda s: max(s.nodes))


def _with_role(g: GraphIndex, site: Site) -> Site:
    """A *head* squashes what the network outputs: nothing learned follows it (a classifier's Softmax, a
    detector's class Sigmoid before box decoding). A *gate* is a Sigmoid whose output scales another tensor
    (squeeze-excitation, GLU, an LSTM's gates written out). Everything else is a hidden activation."""
    op = g.nodes[site.nodes[0]].op_type if len(site.nodes) == 1 else _PATTERN_OPS.get(site.kind)
    if op in HEAD_OPS and _nothing_learned_after(g, site.output):
        return Site(site.kind, site.nodes, site.input, site.output, "head")
    if op in GATE_OPS and _scales_another_tensor(g, site):
        return Site(site.kind, site.nodes, site.input, site.output, "gate")
    return site


def _nothing_learned_after(g: GraphIndex, name: str) -> bool:
    """Every path from ``name`` reaches a graph output through post-processing only (reshapes, concats,
    arithmetic with constants: box decoding), never through a learned layer or another activation."""
    seen, frontier, reaches_output = set(), [name], False
    while frontier:
        tensor = frontier.pop()
        reaches_output |= tensor in g.outputs
        for reader in g.consumers.get(tensor, []):
            if reader in seen:
                continue
            seen.add(reader)
            op = g.nodes[reader].op_type
            if op in LEARNED_OPS or op in SINGLE_OPS:
                return False
            frontier.extend(g.nodes[reader].output)
    return reaches_output


def _scales_another_tensor(g: GraphIndex, site: Site) -> bool:
    """The site's output, reshaped or not (a Linear squeeze-excitation's view to N×C×1×1, tf2onnx's
    Transposes), multiplies a tensor that is neither a constant nor the site's own input."""
    seen, frontier = set(), [site.output]
    while frontier:
        tensor = frontier.pop()
        for reader in g.consumers.get(tensor, []):
            node = g.nodes[reader]
            other = g.other_input(reader, tensor)
            if node.op_type == "Mul" and other not in (None, tensor, site.input) and other not in g.constants:
                return True
            if node.op_type in RESHAPING_OPS and node.input[0] == tensor and reader not in seen:
                seen.add(reader)
                frontier.append(node.output[0])
    return False


def _unused_prefix(model: onnx.ModelProto) -> str:
    """``swap``, or ``swap2_``… where a model already holds swapped nodes: names stay unique when a swapped model
    is swapped again."""
    names = {name for node in model.graph.node for name in (node.name, *node.input, *node.output)}
    prefix, round_ = "swap", 1
    while any(name.startswith(prefix) for name in names):
        round_ += 1
        prefix = f"swap{round_}_"
    return prefix


def parse_roles(spec: str) -> tuple[str, ...]:
    """``--roles activation,gate`` or ``all``."""
    return tuple(parse_choices(spec, list(ROLES), "--roles", allow_all=True, what="role"))


def opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def swap(model: onnx.ModelProto, sites: list[Site], candidate: str) -> tuple[onnx.ModelProto, bool]:
    """The model with ``candidate`` at each of ``sites`` (weights untouched); and whether the candidate was
    written decomposed. Each replacement goes where the site's last node was, so the graph stays sorted."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    version = opset(model)
    prefix = _unused_prefix(model)
    at_last = {max(s.nodes): (n, s) for n, s in enumerate(sites)}
    drop = {i for s in sites for i in s.nodes}
    nodes, decomposed = [], False
    for i, node in enumerate(out.graph.node):
        if i in at_last:
            n, site = at_last[i]
            new, split = candidate_nodes(candidate, site.input, site.output, opset_version=version, tag=f"{prefix}{n}")
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
