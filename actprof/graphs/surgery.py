"""Graph surgery on exported models, without PyTorch: find the activations, swap them, move them.

An *activation region* is a connected group of non-structural nodes (``STRUCTURAL_OPS`` below)
with one data input and one data output, e.g. ``Elu``, ``Sigmoid → Mul`` (SiLU) or
``Softplus, Greater, Where``. Working on regions rather than op names makes every transformation
work for decomposed activations and for either exporter.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import helper, numpy_helper

from actprof import activations

INPUT_NAME, OUTPUT_NAME = "input", "logits"  # the tensor names of every model actprof exports

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


def _names_read(g: onnx.GraphProto) -> set[str]:
    """Every tensor name a node reads, in this graph and in the subgraphs of its If/Loop/Scan nodes."""
    names = {name for n in g.node for name in n.input}
    for node in g.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                names |= _names_read(sub)
    return names


def prune_unused(model: onnx.ModelProto) -> None:
    """Drop initializers and Constant nodes that nothing reads any more."""
    graph = model.graph
    used = _names_read(graph) | {o.name for o in graph.output}
    keep = [n for n in graph.node if n.op_type != "Constant" or any(o in used for o in n.output)]
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
    initializers = [t for t in graph.initializer if t.name in used]
    if len(initializers) != len(graph.initializer):
        dropped = {t.name for t in graph.initializer} - {t.name for t in initializers}
        del graph.initializer[:]
        graph.initializer.extend(initializers)
        # Before IR version 4 every initializer is also a graph input: drop those too, or the runtime would
        # ask for them as inputs once their initializer is gone.
        inputs = [i for i in graph.input if i.name not in dropped]
        del graph.input[:]
        graph.input.extend(inputs)
    value_info = [v for v in graph.value_info if v.name in used or v.name in {o for n in keep for o in n.output}]
    del graph.value_info[:]
    graph.value_info.extend(value_info)


# Single ops that are monotonic non-decreasing whenever their alpha (a slope or a scale), if any, is ≥ 0.
MONOTONIC_OPS = activations.monotonic_ops()


def is_monotonic(model: onnx.ModelProto, region: Region) -> bool:
    """Provably non-decreasing: one node of a monotonic op (LeakyRelu/PRelu only with a slope ≥ 0), or the
    dynamo exporter's Softplus (``Where(x > threshold, x, Softplus(x))``, both branches increasing)."""
    ops = sorted(model.graph.node[i].op_type for i in region.nodes)
    if ops == ["Greater", "Softplus", "Where"]:
        return True
    if len(region.nodes) != 1:
        return False
    node = model.graph.node[region.nodes[0]]
    if node.op_type in MONOTONIC_OPS:
        return all(a.f >= 0 for a in node.attribute if a.name == "alpha")
    if node.op_type == "PRelu":
        from onnx import numpy_helper

        slopes = {t.name: t for t in model.graph.initializer}
        slope = slopes.get(node.input[1])
        return slope is not None and bool((numpy_helper.to_array(slope) >= 0).all())
    return False


class NotMonotonic(ValueError):
    pass


def pool_first(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Move every activation that feeds a MaxPool after it: MaxPool(f(x)) == f(MaxPool(x)) for a monotonic
    non-decreasing f, on a quarter of the elements for a 2×2 pool. Returns the model and how many moved.

    Raises NotMonotonic when an activation in front of a MaxPool is not provably monotonic.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(g.node):
        for name in n.input:
            consumers.setdefault(name, []).append(i)
    moves: list[tuple[Region, int]] = []
    for region in activation_regions(out):
        readers = consumers.get(region.output, [])
        if len(readers) != 1 or g.node[readers[0]].op_type != "MaxPool" or len(g.node[readers[0]].output) != 1:
            continue
        if not is_monotonic(out, region):
            ops = "+".join(g.node[i].op_type for i in region.nodes)
            raise NotMonotonic(f"{ops} is not monotonic non-decreasing: MaxPool(f(x)) != f(MaxPool(x))")
        moves.append((region, readers[0]))
    for region, pool_index in moves:
        pool = g.node[pool_index]
        pooled = f"{pool.output[0]}_before_activation"
        activation_input = region.input
        pool_output = pool.output[0]
        pool.input[0] = activation_input
        pool.output[0] = pooled
        for i in region.nodes:
            node = g.node[i]
            for k, name in enumerate(node.input):
                if name == activation_input:
                    node.input[k] = pooled
            for k, name in enumerate(node.output):
                if name == region.output:
                    node.output[k] = pool_output
    # Keep the graph topologically sorted: each moved MaxPool now runs before its activation.
    order = list(range(len(g.node)))
    for region, pool_index in moves:
        order.remove(pool_index)
        order.insert(order.index(region.nodes[0]), pool_index)
    nodes = [g.node[i] for i in order]
    # Every tensor inside a moved activation changes shape: drop their recorded shapes.
    reshaped = {out for r, _ in moves for i in r.nodes for out in g.node[i].output}
    value_info = [v for v in g.value_info if v.name not in reshaped]
    _set_nodes(out, [_copy(n) for n in nodes])
    del out.graph.value_info[:]
    out.graph.value_info.extend(value_info)
    return out, len(moves)


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy


_FLOAT_TYPES = frozenset(
    {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
)


def computation_key(model: onnx.ModelProto) -> str:
    """A hash of everything a runtime's speed can depend on: the operators in order with their attributes
    and wiring, the inputs' and outputs' types, each weight's type and shape, and the values of weights
    that are not floats (shapes, axes, indices). Not names, and not the values of float weights, which
    change the numbers computed but not the work: except subnormal ones, which some CPUs compute slowly.

    Two models with the same key run one computation on different numbers: the ablation's ReLU swap of
    every model is the ReLU model's graph, and its identity swaps are one graph."""
    import hashlib

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    ids: dict[str, str] = {}
    lines = [f"opsets {sorted((o.domain, o.version) for o in model.opset_import)}"]

    def value(name: str) -> str:
        if not name:
            return "-"
        if name not in ids:
            ids[name] = f"v{len(ids)}"
            if name in weights:
                lines.append(f"{ids[name]} = {_weight_description(weights[name])}")
        return ids[name]

    for tensor in graph.input:
        lines.append(f"input {value(tensor.name)}: {tensor.type.SerializeToString().hex()}")
    for node in graph.node:
        attributes = sorted((a.name, a.SerializeToString().hex()) for a in node.attribute)
        inputs = [value(name) for name in node.input]
        lines.append(f"{node.domain}:{node.op_type}{attributes} {inputs} -> {[value(n) for n in node.output]}")
    lines += [f"output {value(tensor.name)}" for tensor in graph.output]
    lines += [f"unused {value(name)}" for name in weights if name not in ids]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _weight_description(tensor: onnx.TensorProto) -> str:
    import numpy as np

    array = numpy_helper.to_array(tensor)
    shape = f"{tensor.data_type}{list(tensor.dims)}"
    if tensor.data_type not in _FLOAT_TYPES:
        return f"{shape} {array.tobytes().hex()}"
    magnitudes = np.abs(array.astype(np.float64))
    subnormal = bool(np.any((magnitudes > 0) & (magnitudes < np.finfo(array.dtype).tiny)))
    return f"{shape} subnormal" if subnormal else shape
