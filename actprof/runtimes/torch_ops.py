"""The network ops of an ONNX graph as ``torch.nn`` layers and tensor functions, for ``torch_graph``'s rebuild:
one emitter per op type (``NETWORK_OPS``), each reading the node's attributes and constant inputs and adding
the layer, with the graph's weights, to the module being built. An op missing here is refused by the builder."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import numpy_helper

from actprof.errors import ModelFileError

if TYPE_CHECKING:
    from actprof.runtimes.torch_graph import Builder


def _weight(builder: Builder, name: str, what: str) -> np.ndarray:
    value = builder.constant(name)
    if value is None:
        raise ModelFileError(f"the torch runtimes cannot rebuild a {what} whose weights are computed in the graph")
    return np.array(value, dtype=np.float32)


def _padding(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any], dims: int, fill: float):
    """The layer's symmetric padding, and its input: asymmetric ONNX pads (begin ≠ end) become an explicit
    ``nn.ConstantPad`` of ``fill`` in front of an unpadded layer, as a PyTorch port of such a network writes it."""
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    if auto_pad not in (b"NOTSET", b"VALID"):
        raise ModelFileError(f"the torch runtimes cannot rebuild a {node.op_type} with auto_pad {auto_pad.decode()}")
    pads = list(attrs.get("pads", [0] * 2 * dims))
    x = builder.value(node.input[0])
    if pads[:dims] == pads[dims:]:
        return tuple(pads[:dims]), x
    if node.op_type == "AveragePool" or dims > 3:
        raise ModelFileError(f"the torch runtimes cannot rebuild a {node.op_type} with asymmetric padding {pads}")
    from torch import nn

    widths = [w for axis in reversed(range(dims)) for w in (pads[axis], pads[dims + axis])]  # last axis first
    pad = {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d}[dims](tuple(widths), fill)
    builder.count += 1
    builder.root.add_module(f"pad_{builder.count}", pad)
    return (0,) * dims, builder.graph.call_module(f"pad_{builder.count}", (x,))


def _set(parameter, value: np.ndarray) -> None:
    import torch

    with torch.no_grad():
        parameter.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _conv(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    from torch import nn

    weight = _weight(builder, node.input[1], "Conv")
    dims = weight.ndim - 2
    layer = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    groups = attrs.get("group", 1)
    bias = len(node.input) > 2 and bool(node.input[2])
    padding, x = _padding(builder, node, attrs, dims, 0.0)
    conv = layer(
        weight.shape[1] * groups,
        weight.shape[0],
        weight.shape[2:],
        stride=tuple(attrs.get("strides", [1] * dims)),
        padding=padding,
        dilation=tuple(attrs.get("dilations", [1] * dims)),
        groups=groups,
        bias=bias,
    )
    _set(conv.weight, weight)
    if bias:
        _set(conv.bias, _weight(builder, node.input[2], "Conv"))
    builder.add_layer(conv, [x], node.output[0], "conv")


def _pool(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    from torch import nn

    kernel = tuple(attrs["kernel_shape"])
    dims = len(kernel)
    padding, x = _padding(builder, node, attrs, dims, -math.inf)
    common = {
        "kernel_size": kernel,
        "stride": tuple(attrs.get("strides", [1] * dims)),
        "padding": padding,
        "ceil_mode": bool(attrs.get("ceil_mode", 0)),
    }
    if node.op_type == "MaxPool":
        pool = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[dims](
            dilation=tuple(attrs.get("dilations", [1] * dims)), **common
        )
    else:
        include_pad = bool(attrs.get("count_include_pad", 0))
        pool = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[dims](count_include_pad=include_pad, **common)
    builder.add_layer(pool, [x], node.output[0], "pool")


def _global_average(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    x = builder.value(node.input[0])
    builder.values[node.output[0]] = builder.graph.call_method("mean", (x,), {"dim": (-2, -1), "keepdim": True})


def _gemm(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    from torch import nn

    weight = _weight(builder, node.input[1], "Gemm")
    if attrs.get("transA", 0):
        raise ModelFileError("the torch runtimes cannot rebuild a Gemm with transA=1")
    weight = weight if attrs.get("transB", 0) else weight.T
    weight = weight * attrs.get("alpha", 1.0)
    bias = len(node.input) > 2 and bool(node.input[2])
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
    _set(linear.weight, weight)
    if bias:
        bias_values = np.broadcast_to(_weight(builder, node.input[2], "Gemm"), (weight.shape[0],))
        _set(linear.bias, bias_values * attrs.get("beta", 1.0))
    builder.add_layer(linear, [builder.value(node.input[0])], node.output[0], "linear")


def _matmul(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    from torch import nn

    weight = builder.constant(node.input[1])
    if weight is not None and np.ndim(weight) == 2:  # x @ W: a Linear without bias, as nn.Linear(bias=False)
        linear = nn.Linear(weight.shape[0], weight.shape[1], bias=False)
        _set(linear.weight, np.array(weight, dtype=np.float32).T)
        builder.add_layer(linear, [builder.value(node.input[0])], node.output[0], "linear")
        return
    import torch

    builder.add_call(torch.matmul, [builder.value(node.input[0]), builder.value(node.input[1])], node.output[0])


def _batch_norm(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    from torch import nn

    scale, bias, mean, var = (_weight(builder, name, "BatchNormalization") for name in node.input[1:5])
    norm = nn.BatchNorm2d(scale.shape[0], eps=attrs.get("epsilon", 1e-5))
    targets = (norm.weight, norm.bias, norm.running_mean, norm.running_var)
    for parameter, value in zip(targets, (scale, bias, mean, var), strict=True):
        _set(parameter, value)
    builder.add_layer(norm.eval(), [builder.value(node.input[0])], node.output[0], "norm")


def _reshape(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    import torch

    shape = builder.constant(node.input[1])
    if shape is None:
        raise ModelFileError("the torch runtimes cannot rebuild a Reshape whose shape is computed in the graph")
    target = [int(d) for d in shape]
    x = builder.value(node.input[0])
    if 0 in target and not attrs.get("allowzero", 0):  # ONNX: 0 copies that dimension of the input
        builder.add_call(_reshape_keeping_zeros, [x], node.output[0], shape=tuple(target))
        return
    builder.add_call(torch.reshape, [x], node.output[0], shape=tuple(target))


def _reshape_keeping_zeros(x, shape: tuple[int, ...]):
    return x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(shape)])


def _flatten(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    import torch

    axis = attrs.get("axis", 1)
    x = builder.value(node.input[0])
    if axis == 1:
        builder.add_call(torch.flatten, [x], node.output[0], start_dim=1)
    else:
        builder.add_call(_flatten_at, [x], node.output[0], axis=axis)


def _flatten_at(x, axis: int):
    return x.reshape(math.prod(x.shape[:axis]), -1)


def _binary(fn: Callable) -> Callable:
    def emit(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        builder.add_call(fn, [builder.value(name) for name in node.input], node.output[0])

    return emit


def _sum(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    values = [builder.value(name) for name in node.input]
    total = values[0]
    for value in values[1:]:
        total = builder.graph.call_function(operator.add, (total, value))
    builder.values[node.output[0]] = total


def _transpose(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    x = builder.value(node.input[0])
    perm = attrs.get("perm")
    if perm is None:
        raise ModelFileError("the torch runtimes rebuild Transpose with an explicit perm only")
    builder.values[node.output[0]] = builder.graph.call_method("permute", (x, *perm))


def _unsqueeze(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    axes = attrs.get("axes")
    if axes is None:
        axes = builder.constant(node.input[1]) if len(node.input) > 1 else None
    if axes is None:
        raise ModelFileError("the torch runtimes rebuild Unsqueeze with constant axes only")
    builder.add_call(_unsqueezed, [builder.value(node.input[0])], node.output[0], axes=tuple(int(a) for a in axes))


def _unsqueezed(x, axes: tuple[int, ...]):
    rank = x.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = x.unsqueeze(axis)
    return x


def _lrn(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    from torch import nn

    norm = nn.LocalResponseNorm(
        attrs["size"], alpha=attrs.get("alpha", 1e-4), beta=attrs.get("beta", 0.75), k=attrs.get("bias", 1.0)
    )
    builder.add_layer(norm, [builder.value(node.input[0])], node.output[0], "lrn")


def _softmax(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    import torch

    x = builder.value(node.input[0])
    if builder.opset >= 13:
        builder.add_call(torch.softmax, [x], node.output[0], dim=attrs.get("axis", -1))
    else:  # before opset 13: over everything from ``axis`` on, as one flattened dimension (default axis 1)
        builder.add_call(_softmax_flattened, [x], node.output[0], axis=attrs.get("axis", 1))


def _softmax_flattened(x, axis: int):
    import torch

    return torch.softmax(x.reshape(*x.shape[:axis], -1), dim=-1).reshape(x.shape)


def _concat(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    import torch

    tensors = [builder.value(name) for name in node.input]
    builder.values[node.output[0]] = builder.graph.call_function(torch.cat, (tensors,), {"dim": attrs["axis"]})


def _pass_through(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """Dropout and Identity outside an activation site: inference leaves the tensor as it is."""
    builder.values[node.output[0]] = builder.value(node.input[0])


def _constant(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    if "value" not in attrs:
        raise ModelFileError("the torch runtimes rebuild Constant nodes holding a tensor only")
    builder.constants[node.output[0]] = numpy_helper.to_array(attrs["value"])


def _constant_of_shape(builder: Builder, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
    """A tensor of one value (the onnx package's light models write their weights this way)."""
    shape = builder.constant(node.input[0])
    if shape is None:
        raise ModelFileError("the torch runtimes rebuild ConstantOfShape with a constant shape only")
    fill = numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
    builder.constants[node.output[0]] = np.full([int(d) for d in shape], fill.reshape(-1)[0], dtype=fill.dtype)


NETWORK_OPS: dict[str, Callable[[Builder, onnx.NodeProto, dict[str, Any]], None]] = {
    "Conv": _conv,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _global_average,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "BatchNormalization": _batch_norm,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Add": _binary(operator.add),
    "Sub": _binary(operator.sub),
    "Mul": _binary(operator.mul),
    "Div": _binary(operator.truediv),
    "Softmax": _softmax,
    "Concat": _concat,
    "Dropout": _pass_through,
    "Identity": _pass_through,
    "Constant": _constant,
    "Sum": _sum,
    "Transpose": _transpose,
    "Unsqueeze": _unsqueeze,
    "LRN": _lrn,
    "ConstantOfShape": _constant_of_shape,
}
