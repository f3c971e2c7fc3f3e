"""Graph surgery on exported models, without PyTorch: find the activations, swap them, move them.

An *activation region* is a connected group of non-structural nodes (see ``export.STRUCTURAL_OPS``)
with one data input and one data output, e.g. ``Elu``, ``Sigmoid → Mul`` (SiLU) or
``Softplus, Greater, Where``. Working on regions rather than op names makes every transformation
work for decomposed activations and for either exporter.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import helper

STRUCTURAL_OPS = frozenset(
    {
        "Conv",
        "MaxPool",
        "Reshape",
        "Flatten",
        "Gemm",
        "Identity",
        "Constant",
        "Shape",
        "Gather",
        "Unsqueeze",
        "Concat",
    }
)


@dataclass(frozen=True)
class Region:
    nodes: tuple[int, ...]  # indices into graph.node, in graph order
    input: str
    output: str


def activation_regions(model: onnx.ModelProto) -> list[Region]:
    graph = model.graph
    constants = {i.name for i in graph.initializer} | {
        out for n in graph.node if n.op_type == "Constant" for out in n.output
    }
    members = [i for i, n in enumerate(graph.node) if n.op_type not in STRUCTURAL_OPS]
    producer = {out: i for i, n in enumerate(graph.node) for out in n.output}
    # Union-find over activation nodes connected by a tensor.
    parent = {i: i for i in members}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in members:
        for name in graph.node[i].input:
            j = producer.get(name)
            if j is not None and j in parent:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in members:
        groups.setdefault(find(i), []).append(i)

    consumers: dict[str, set[int]] = {}
    for i, n in enumerate(graph.node):
        for name in n.input:
            consumers.setdefault(name, set()).add(i)
    graph_outputs = {o.name for o in graph.output}
    regions = []
    for nodes in groups.values():
        inside = set(nodes)
        produced = {out for i in nodes for out in graph.node[i].output}
        inputs = {
            name
            for i in nodes
            for name in graph.node[i].input
            if name and name not in produced and name not in constants
        }
        outputs = {name for name in produced if (consumers.get(name, set()) - inside) or name in graph_outputs}
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"activation region {sorted(graph.node[i].op_type for i in nodes)} is not 1-in 1-out")
        regions.append(Region(tuple(sorted(nodes)), inputs.pop(), outputs.pop()))
    return sorted(regions, key=lambda r: r.nodes[0])


def replace_activation(model: onnx.ModelProto, op_type: str) -> onnx.ModelProto:
    """The same weights with every activation region replaced by one ``op_type`` node (Relu, Identity…)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    regions = activation_regions(out)
    drop = {i for r in regions for i in r.nodes}
    first = {r.nodes[0]: r for r in regions}
    nodes = []
    for i, node in enumerate(out.graph.node):
        if i in first:
            r = first[i]
            nodes.append(helper.make_node(op_type, [r.input], [r.output], name=f"{op_type}_{len(nodes)}"))
        elif i not in drop:
            nodes.append(node)
    _set_nodes(out, nodes)
    return out


def _set_nodes(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> None:
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    prune_unused(model)


def prune_unused(model: onnx.ModelProto) -> None:
    """Drop initializers and Constant nodes that nothing reads any more."""
    graph = model.graph
    used = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
    keep = [n for n in graph.node if n.op_type != "Constant" or any(o in used for o in n.output)]
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
    initializers = [t for t in graph.initializer if t.name in used]
    if len(initializers) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(initializers)
    value_info = [v for v in graph.value_info if v.name in used or v.name in {o for n in keep for o in n.output}]
    del graph.value_info[:]
    graph.value_info.extend(value_info)
