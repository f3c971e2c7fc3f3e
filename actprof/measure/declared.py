"""What a model declares about its inputs (names, element types, dimensions, which axis is the batch, the
embedding table an integer input indexes), and the model re-declared at one batch's shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import numpy_helper

from actprof.errors import UsageError

if TYPE_CHECKING:
    from actprof.measure.inputs import Inputs

Dim = int | str | None  # a fixed size, a named free dimension, an unnamed free dimension
PASS_THROUGH = frozenset({"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity"})


@dataclass(frozen=True)
class Declared:
    name: str
    dims: tuple[Dim, ...]
    dtype: np.dtype
    batch_axis: int | None

    @property
    def shown(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.dims) + "]"


def declared_inputs(model: onnx.ModelProto) -> list[Declared]:
    """The inputs the model reads (not initializers listed as inputs), with the batch axis of each: where the
    first input's first dimension (a name such as ``batch``, or a fixed size) appears."""
    initializers = {t.name for t in model.graph.initializer}
    specs = [i for i in model.graph.input if i.name not in initializers]
    if not specs:
        raise UsageError("the model reads no input; swap has nothing to feed it")
    dims_of = {spec.name: _dims(spec) for spec in specs}
    first = dims_of[specs[0].name]
    batch = first[0] if first else None
    declared = []
    for spec in specs:
        dims = dims_of[spec.name]
        if isinstance(batch, str):
            axis = dims.index(batch) if batch in dims else None
        else:  # unnamed or fixed: the leading dimension, where it matches the first input's
            axis = 0 if dims and dims[0] == batch else None
        declared.append(Declared(spec.name, dims, _dtype(spec), axis))
    return declared


def _dims(spec: onnx.ValueInfoProto) -> tuple[Dim, ...]:
    tensor = spec.type.tensor_type
    if not spec.type.HasField("tensor_type") or tensor.elem_type not in onnx.helper.get_all_tensor_dtypes():
        raise UsageError(f"input {spec.name!r} is not a tensor of a known element type; swap cannot feed it")
    if not tensor.HasField("shape"):
        raise UsageError(f"input {spec.name!r} declares no shape; swap needs its rank (re-export with shapes)")
    return tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None) for d in tensor.shape.dim
    )


def _dtype(spec: onnx.ValueInfoProto) -> np.dtype:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(spec.type.tensor_type.elem_type))


def check_named_sizes(shaped: list[tuple[str, Declared, tuple[int, ...]]], *, prefix: str = "") -> None:
    """A named dimension (``sequence`` in the token ids and their mask) has one size in every input shaped:
    ``shaped`` holds (how the input is named in a message, its declaration, its shape). Refused in one line."""
    seen: dict[str, tuple[str, int]] = {}
    for label, spec, shape in shaped:
        for axis, (dim, size) in enumerate(zip(spec.dims, shape, strict=True)):
            if not isinstance(dim, str) or axis == spec.batch_axis:
                continue
            first = seen.setdefault(dim, (label, size))
            if first[1] != size:
                raise UsageError(
                    f"{prefix}dimension {dim!r} is {first[1]} in {first[0]} but {size} in {label}; "
                    "give them the same size"
                )


def embedding_rows(model: onnx.ModelProto, name: str) -> tuple[int, str] | None:
    """(rows, table name) of the smallest constant table the input indexes with a Gather (through casts and
    reshapes): the vocabulary its token ids must stay below. None: it indexes no table."""
    graph = model.graph
    tables = {t.name: tuple(t.dims) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tables[node.output[0]] = tuple(numpy_helper.to_array(node.attribute[0].t).shape)
    found: list[tuple[int, str]] = []
    frontier, seen = [name], set()
    while frontier:
        tensor = frontier.pop()
        for index, node in enumerate(graph.node):
            if tensor not in node.input or index in seen:
                continue
            seen.add(index)
            if node.op_type == "Gather" and list(node.input[1:2]) == [tensor] and tables.get(node.input[0]):
                found.append((int(tables[node.input[0]][0]), node.input[0]))
            elif node.op_type in PASS_THROUGH and node.input[0] == tensor:
                frontier.extend(node.output)
    return min(found) if found else None


def with_input_shape(model: onnx.ModelProto, inputs: Inputs, batch: int) -> onnx.ModelProto:
    """The model with every input declared at ``batch``'s shape and its other shapes left to the runtime.

    A model exported at a fixed batch often hard-codes it in a Reshape (``[1, 2048]`` before the classifier);
    run at another batch, such a shape's leading dimension becomes -1 (see ``batch_reshapes``)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if inputs.fixed_batch is not None and inputs.feeds[0].shapes[batch][0] != inputs.fixed_batch:
        _free_reshape_batch(out, inputs.fixed_batch)
    shapes = {f.name: f.shapes[batch] for f in inputs.feeds}
    for spec in out.graph.input:
        if spec.name in shapes:
            for dim, value in zip(spec.type.tensor_type.shape.dim, shapes[spec.name], strict=True):
                dim.Clear()
                dim.dim_value = value
    for output in out.graph.output:
        for dim in output.type.tensor_type.shape.dim:
            dim.Clear()
            dim.dim_param = "?"
    del out.graph.value_info[:]
    return out


def _reshape_shapes(model: onnx.ModelProto, batch: int) -> list[tuple[onnx.NodeProto, onnx.TensorProto]]:
    """Reshapes whose target shape is an initializer starting with the fixed ``batch`` and holding no -1."""
    initializers = {t.name: t for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        shape = initializers.get(node.input[1]) if node.op_type == "Reshape" and len(node.input) > 1 else None
        if shape is not None:
            values = numpy_helper.to_array(shape)
            if values.ndim == 1 and len(values) > 1 and values[0] == batch and -1 not in values:
                found.append((node, shape))
    return found


def _free_reshape_batch(model: onnx.ModelProto, batch: int) -> None:
    for _, shape in _reshape_shapes(model, batch):
        values = numpy_helper.to_array(shape).copy()
        values[0] = -1
        shape.CopyFrom(numpy_helper.from_array(values, shape.name))


def batch_reshapes(model: onnx.ModelProto, inputs: Inputs) -> list[str]:
    """The Reshape nodes whose hard-coded batch is freed to run at the other batch sizes asked for."""
    shapes = inputs.feeds[0].shapes.values()
    if inputs.fixed_batch is None or all(s and s[0] == inputs.fixed_batch for s in shapes):
        return []
    return [node.name or node.output[0] for node, _ in _reshape_shapes(model, inputs.fixed_batch)]
