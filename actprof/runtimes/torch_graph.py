"""An ONNX graph rebuilt as the PyTorch module a user writes: ``nn.Conv2d``, ``nn.ELU``, ``nn.MaxPool2d``…

Why not a generic converter (onnx2torch): the torch and Inductor columns must time the network as it is
served from PyTorch, where an activation is one module (``nn.GELU``, ``nn.SiLU``, ``nn.Mish``). A generic
converter writes the exporter's decomposed patterns back op by op (GELU's Erf, SiLU's Sigmoid·Mul), which runs
more kernels in eager mode and hides the activation from Inductor's fusion patterns, which match ``aten.gelu``.
Here each activation *site* (``graphs.sites``: single ops and the decomposed patterns) becomes the module the
activation table builds, and the network ops around it become their ``torch.nn`` layers with the graph's
weights. So actprof's own models, their ablation variants and ``swap``'s candidates all rebuild exactly.

Only the ops actprof's networks and common CNNs use are covered; any other op is refused in one line naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from actprof import activations
from actprof.errors import ModelFileError
from actprof.graphs.sites import HEAD_ONLY_OPS, Site, find_sites
from actprof.runtimes.torch_ops import NETWORK_OPS

if TYPE_CHECKING:
    import torch
    from torch import nn

# The decomposed patterns graphs.sites recognises → the activation they are (the table's ``patterns``).
_PATTERN_OF = activations.patterns()


def to_torch(model: bytes | onnx.ModelProto) -> torch.fx.GraphModule:
    """The ONNX model as a ``torch.fx.GraphModule`` of ``torch.nn`` layers, in eval mode, fp32; its inputs
    and outputs in the graph's order. A refusal (ModelFileError, one line) for an op it does not rebuild."""
    import torch

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else model
    builder = Builder(proto)
    module = torch.fx.GraphModule(builder.root, builder.graph, class_name="FromOnnx")
    return module.eval()


class Builder:
    """Walks the graph once in its (topological) order, emitting one fx node per ONNX node or site."""

    def __init__(self, proto: onnx.ModelProto) -> None:
        import torch

        graph = proto.graph
        self.root = torch.nn.Module()
        self.graph = torch.fx.Graph()
        self.constants: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:  # the TorchScript exporter shares equal weights through Identity nodes
            if node.op_type == "Identity" and node.input[0] in self.constants:
                self.constants[node.output[0]] = self.constants[node.input[0]]
        self.values: dict[str, Any] = {}  # ONNX tensor name → fx node
        self.count = 0
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)
        produced = {name for node in graph.node for name in node.output}
        for value in graph.input:  # IR 3 lists initializers (and, in the light models, node outputs) as inputs
            if value.name not in self.constants and value.name not in produced:
                self.values[value.name] = self.graph.placeholder(_python_name(value.name))
        self.thresholds: dict[str, float] = {}  # a Softplus site's output → the threshold its exporter wrote
        found = [self._with_threshold(s, graph) for s in find_sites(proto) if s.kind not in HEAD_ONLY_OPS]
        sites = {max(site.nodes): site for site in found}
        inside = {i for site in sites.values() for i in site.nodes}
        for i, node in enumerate(graph.node):
            if i in sites:
                self._site(sites[i], [graph.node[j] for j in sites[i].nodes])
            elif i not in inside:
                self._node(node)
        outputs = [self.value(o.name) for o in graph.output]
        self.graph.output(outputs[0] if len(outputs) == 1 else tuple(outputs))

    # --- values ---------------------------------------------------------------------------------------

    def value(self, name: str):
        """The fx node for an ONNX tensor; a constant becomes a buffer of the root module."""
        if name in self.values:
            return self.values[name]
        if name not in self.constants:
            raise ModelFileError(f"the torch runtimes cannot rebuild this model: tensor {name!r} has no producer")
        import torch

        buffer = f"const_{len(self.values)}"
        self.root.register_buffer(buffer, torch.from_numpy(np.array(self.constants[name])))
        self.values[name] = self.graph.get_attr(buffer)
        return self.values[name]

    def constant(self, name: str) -> np.ndarray | None:
        return self.constants.get(name)

    def add_layer(self, module: nn.Module, inputs: list, output: str, kind: str) -> None:
        self.count += 1
        name = f"{kind.lower()}_{self.count}"
        self.root.add_module(name, module)
        self.values[output] = self.graph.call_module(name, tuple(inputs))

    def add_call(self, fn: Callable, inputs: list, output: str, **kwargs) -> None:
        self.values[output] = self.graph.call_function(fn, tuple(inputs), kwargs)

    # --- sites ----------------------------------------------------------------------------------------

    def _with_threshold(self, site: Site, graph: onnx.GraphProto) -> Site:
        """PyTorch's exporter writes ``nn.Softplus`` as ``Where(Greater(x, threshold), x, Softplus(x))``: that
        whole pattern is one ``nn.Softplus(threshold=…)`` site (the rest of the graph never sees the branch)."""
        if site.kind != "Softplus":
            return site
        nodes = list(graph.node)
        readers = [i for i, n in enumerate(nodes) if site.output in n.input]
        if len(readers) != 1 or nodes[readers[0]].op_type != "Where":
            return site
        where = nodes[readers[0]]
        if list(where.input[1:]) != [site.input, site.output]:
            return site
        greater = next((i for i, n in enumerate(nodes) if where.input[0] in n.output and n.op_type == "Greater"), None)
        if greater is None or nodes[greater].input[0] != site.input:
            return site
        threshold = self.constant(nodes[greater].input[1])
        if threshold is None or np.size(threshold) != 1:
            return site
        self.thresholds[where.output[0]] = float(np.reshape(threshold, -1)[0])
        return Site(site.kind, (*site.nodes, greater, readers[0]), site.input, where.output[0])

    def _site(self, site: Site, nodes: list[onnx.NodeProto]) -> None:
        if site.output in self.thresholds:
            from torch import nn

            module = nn.Softplus(threshold=self.thresholds[site.output])
            self.add_layer(module, [self.value(site.input)], site.output, "act")
            return
        module = site_module(site, nodes, self.constant)
        self.add_layer(module, [self.value(site.input)], site.output, "act")

    # --- network ops ----------------------------------------------------------------------------------

    def _node(self, node: onnx.NodeProto) -> None:
        emit = NETWORK_OPS.get(node.op_type)
        if emit is None:
            raise ModelFileError(
                f"the torch runtimes cannot rebuild ONNX op {node.op_type} (node {node.name or node.output[0]}); "
                f"they rebuild {', '.join(sorted(NETWORK_OPS))} and the activation ops; profile this model "
                "with --provider cpu or openvino"
            )
        emit(self, node, _attrs(node))


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _python_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name)
    return cleaned if cleaned[:1].isalpha() else f"input_{cleaned}"


# --- activation sites ----------------------------------------------------------------------------------


def site_module(site: Site, nodes: list[onnx.NodeProto], constant: Callable[[str], np.ndarray | None]) -> nn.Module:
    """The ``torch.nn`` module one activation site is: the activation table's module for its op and parameter."""
    from torch import nn

    if site.kind in _PATTERN_OF:
        return _PATTERN_OF[site.kind].module()
    if site.kind == "Clip (ReLU6)":
        return nn.ReLU6()
    node = nodes[0]
    attrs = _attrs(node)
    if node.op_type == "Identity":
        return nn.Identity()
    if node.op_type == "HardSigmoid":
        return _hard_sigmoid(attrs.get("alpha", 0.2), attrs.get("beta", 0.5))
    if node.op_type == "PRelu":
        return _prelu(constant(node.input[1]))
    if node.op_type == "Selu" and not _is_default_selu(attrs):
        return _Lambda(lambda x, a=attrs: a.get("gamma", 1.0507) * nn.functional.elu(x, a.get("alpha", 1.6733)))
    row = _row_of(node.op_type, attrs)
    param = attrs.get(row.onnx.param_attr) if row.onnx.param_attr else None
    if row.name == "leaky_relu" and param is None:
        param = 0.01  # ONNX LeakyRelu's default slope, as torch's
    return row.module(param)


def _row_of(op_type: str, attrs: dict[str, Any]) -> activations.Activation:
    """The activation table's row written as ``op_type`` with these attributes (Gelu's ``approximate``)."""
    for row in activations.candidates().values():
        if row.onnx.op != op_type:
            continue
        wanted = {k: (v.encode() if isinstance(v, str) else v) for k, v in row.onnx.attrs.items()}
        given = {k: attrs.get(k, b"none" if k == "approximate" else None) for k in wanted}
        if given == wanted and (op_type != "Gelu" or wanted or attrs.get("approximate", b"none") == b"none"):
            return row
    raise ModelFileError(f"the torch runtimes cannot rebuild activation op {op_type} with attributes {attrs}")


def _is_default_selu(attrs: dict[str, Any]) -> bool:
    alpha, gamma = attrs.get("alpha", activations.SELU_ALPHA), attrs.get("gamma", activations.SELU_SCALE)
    return math.isclose(alpha, activations.SELU_ALPHA, rel_tol=1e-6) and math.isclose(
        gamma, activations.SELU_SCALE, rel_tol=1e-6
    )


def _hard_sigmoid(alpha: float, beta: float) -> nn.Module:
    from torch import nn

    if math.isclose(alpha, 1 / 6, rel_tol=1e-5) and math.isclose(beta, 0.5, rel_tol=1e-6):
        return nn.Hardsigmoid()
    return _Lambda(lambda x: (alpha * x + beta).clamp(0.0, 1.0))


def _prelu(slope: np.ndarray | None) -> nn.Module:
    import torch
    from torch import nn

    if slope is None:
        raise ModelFileError("the torch runtimes cannot rebuild a PRelu whose slope is not a constant")
    flat = np.array(slope, dtype=np.float32).reshape(-1)
    module = nn.PReLU(num_parameters=flat.size)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(flat))
    return module


class _Lambda:
    """A parameter-free module from a function (an activation torch has no module for at these constants)."""

    def __new__(cls, fn: Callable):
        from torch import nn

        class Function(nn.Module):
            def forward(self, x):
                return fn(x)

        return Function()
