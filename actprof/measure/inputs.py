"""The inputs ``swap`` feeds any network: each input's shape per batch size (``--input-shape`` for free
dimensions), random normal values with a seed or real ones from ``--inputs FILE.npz`` (no pickle), sizes
checked before anything large is allocated; and the model declared at each batch's shape."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from actprof.errors import ModelFileError, UsageError

MAX_INPUT_BYTES = 1 << 30  # a batch of inputs larger than this is refused before it is allocated


@dataclass(frozen=True)
class Inputs:
    """The model's input, resolved: its name, the shape at each batch size, and how values are drawn."""

    name: str
    output: str
    shapes: dict[int, tuple[int, ...]]  # batch size -> shape
    dtype: np.dtype
    given: np.ndarray | None  # from --inputs; None: random normal with ``seed``
    seed: int
    fixed_batch: int | None = None  # the batch the model declares, where it declares one
    reshaped: bool = False  # --input-shape overrode the declared shape

    def batch(self, size: int) -> np.ndarray:
        shape = self.shapes[size]
        if self.given is not None:
            reps = -(-size // len(self.given))
            return np.ascontiguousarray(np.concatenate([self.given] * reps)[:size].astype(self.dtype))
        return np.random.default_rng(self.seed).standard_normal(shape).astype(self.dtype)

    def source(self, inputs_file: Path | None) -> str:
        return f"{inputs_file.name} (given)" if inputs_file else f"random normal, seed {self.seed}"


def parse_input_shape(spec: str | None) -> dict[str, tuple[int, ...]]:
    """``name=1x3x224x224`` (comma-separated for several inputs) → {name: shape}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in (s.strip() for s in (spec or "").split(",") if s.strip()):
        name, _, dims = item.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not name or not shape or any(d < 1 for d in shape):
            raise UsageError(f"--input-shape must look like name=1x3x224x224, got {item!r}")
        shapes[name] = shape
    return shapes


def resolve_inputs(
    model: onnx.ModelProto,
    batch_sizes: list[int],
    *,
    input_shape: dict[str, tuple[int, ...]],
    inputs_file: Path | None,
    seed: int,
) -> Inputs:
    """The one input the model reads, with a concrete shape for every batch size (refusing what cannot fit)."""
    initializers = {t.name for t in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(graph_inputs) != 1:
        names = ", ".join(i.name for i in graph_inputs) or "none"
        raise UsageError(f"swap profiles models with exactly one input; this one has: {names}")
    spec = graph_inputs[0]
    unknown = set(input_shape) - {spec.name}
    if unknown:
        raise UsageError(f"--input-shape names {sorted(unknown)}, but the model's input is {spec.name!r}")
    tensor = spec.type.tensor_type
    if not spec.type.HasField("tensor_type") or tensor.elem_type not in onnx.helper.get_all_tensor_dtypes():
        raise UsageError(f"input {spec.name!r} is not a tensor of a known element type; swap cannot feed it")
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    if not tensor.HasField("shape") or not tensor.shape.dim:
        raise UsageError(f"input {spec.name!r} declares no shape; swap needs its rank (re-export with shapes)")
    declared = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    base = input_shape.get(spec.name)
    if base is None:
        if any(d is None for d in declared[1:]):
            raise UsageError(f"input {spec.name!r} has free dimensions {declared}; give --input-shape {spec.name}=…")
        base = (declared[0] or batch_sizes[0], *declared[1:])
    if len(base) != len(declared):
        raise UsageError(f"--input-shape {spec.name} has {len(base)} dimensions, the model's input has {len(declared)}")
    shapes = {b: (b, *base[1:]) for b in batch_sizes}
    if (
        declared
        and declared[0] is not None
        and spec.name not in input_shape
        and any(b != declared[0] for b in batch_sizes)
    ):
        raise UsageError(
            f"input {spec.name!r} has a fixed batch of {declared[0]}; use --batch-sizes {declared[0]}, or "
            f"--input-shape {spec.name}=Bx… to run it at other batch sizes if the model allows"
        )
    largest = max(int(np.prod(s)) * dtype.itemsize for s in shapes.values())
    if largest > MAX_INPUT_BYTES:
        raise UsageError(f"the largest input batch would take {largest / 2**30:.1f} GiB; use smaller --batch-sizes")
    given = _load_inputs(inputs_file, spec.name, base[1:]) if inputs_file else None
    fixed = declared[0] if declared else None
    return Inputs(spec.name, model.graph.output[0].name, shapes, dtype, given, seed, fixed, spec.name in input_shape)


def _load_inputs(path: Path, name: str, sample_shape: tuple[int, ...]) -> np.ndarray:
    """Inputs from an .npz (no pickle): the array named like the input, or the only one."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise UsageError(f"{path} holds a single array; --inputs takes an .npz archive (np.savez)")
        with loaded as archive:
            key = name if name in archive.files else (archive.files[0] if len(archive.files) == 1 else None)
            if key is None:
                raise UsageError(f"{path} has no array named {name!r} (has: {', '.join(archive.files)})")
            array = archive[key]
    except (OSError, ValueError, EOFError, TypeError) as exc:
        raise ModelFileError(f"{path} is not a readable .npz of arrays ({str(exc).splitlines()[0][:80]})") from None
    if tuple(array.shape[1:]) != tuple(sample_shape) or len(array) == 0:
        raise UsageError(
            f"{path}: {key} has shape {array.shape}, the model wants (N, {', '.join(map(str, sample_shape))})"
        )
    return array


def with_input_shape(model: onnx.ModelProto, inputs: Inputs, batch: int) -> onnx.ModelProto:
    """The model with its input declared at ``batch``'s shape and its other shapes left to the runtime.

    A model exported at a fixed batch often hard-codes it in a Reshape (``[1, 2048]`` before the classifier);
    run at another batch, such a shape's leading dimension becomes -1 (see ``batch_reshapes``)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if inputs.fixed_batch is not None and inputs.shapes[batch][0] != inputs.fixed_batch:
        _free_reshape_batch(out, inputs.fixed_batch)
    spec = next(i for i in out.graph.input if i.name == inputs.name)
    for dim, value in zip(spec.type.tensor_type.shape.dim, inputs.shapes[batch], strict=True):
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
    from onnx import numpy_helper

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
    from onnx import numpy_helper

    for _, shape in _reshape_shapes(model, batch):
        values = numpy_helper.to_array(shape).copy()
        values[0] = -1
        shape.CopyFrom(numpy_helper.from_array(values, shape.name))


def batch_reshapes(model: onnx.ModelProto, inputs: Inputs) -> list[str]:
    """The Reshape nodes whose hard-coded batch is freed to run at the other batch sizes asked for."""
    if inputs.fixed_batch is None or all(s[0] == inputs.fixed_batch for s in inputs.shapes.values()):
        return []
    return [node.name or node.output[0] for node, _ in _reshape_shapes(model, inputs.fixed_batch)]
