"""Bring your own model: what would ELU (or GELU, SiLU…) cost in *this* network, on *this* runtime?

``swap`` finds every activation site of an ONNX model (``sites``), writes one variant per candidate with
the chosen sites replaced (weights untouched, each variant through the full ONNX checker), and profiles
the original and the variants side by side with the harness ``profile`` uses: each backend's models in
interleaved rounds of their own, ratios to the original with CIs, per-op share, what each runtime fused,
memory. The variants are **not retrained**: their outputs differ, only their cost is measured.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from actprof import export, latency, runtime, sites, storage
from actprof.errors import ActprofError, ModelFileError, ProviderUnavailable, UsageError
from actprof.precision import DERIVED
from actprof.records import FusionCensus, InputSpec, LatencyResult, OpProfile, SiteRecord, SwapRecord, SwapVariant
from actprof.settings import ProfileSettings, parse_positive_ints

MAX_INPUT_BYTES = 1 << 30  # a batch of inputs larger than this is refused before it is allocated
Say = Callable[[str], None]


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


def site_records(model: onnx.ModelProto, found: list[sites.Site], inputs: Inputs, batch: int) -> list[SiteRecord]:
    """Each site with its output size at ``batch`` (shape inference on the model at that input shape)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(with_input_shape(model, inputs, batch))
        dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    except (onnx.shape_inference.InferenceError, RuntimeError):
        dims = {}
    records = []
    for site in found:
        shape = dims.get(site.output)
        elements = int(np.prod(shape)) if shape and all(d > 0 for d in shape) else None
        names = [model.graph.node[i].name or model.graph.node[i].op_type for i in site.nodes]
        records.append(SiteRecord(site.kind, names, site.input, site.output, elements))
    return records


def build_variants(
    model: onnx.ModelProto, found: list[sites.Site], chosen: list[int], candidates: list[str]
) -> dict[str, tuple[bytes, bool]]:
    """{"original": model, candidate: swapped model} — each through the full ONNX checker."""
    variants = {"original": (model.SerializeToString(), False)}
    selected = [found[i] for i in chosen]
    for candidate in candidates:
        swapped, decomposed = sites.swap(model, selected, candidate)
        try:
            onnx.checker.check_model(swapped, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
            raise ModelFileError(
                f"--to {candidate}: the swapped model fails the ONNX checker ({str(exc).splitlines()[0][:120]})"
            ) from None
        variants[candidate] = (swapped.SerializeToString(), decomposed)
    return variants


def parse_sites(spec: str | None, count: int) -> list[int]:
    """``--sites 0,3,5`` (indices in the listing) or every site."""
    if not spec or spec.strip().lower() == "all":
        return list(range(count))
    chosen = [i - 1 for i in parse_positive_ints(spec, "--sites", limit=count)]
    return sorted(chosen)


def profile_variants(
    variants: dict[str, tuple[bytes, bool]],
    inputs: Inputs,
    settings: ProfileSettings,
    *,
    derived: dict[tuple[str, str], bytes],
    say: Say,
) -> tuple[list[LatencyResult], list[OpProfile], list[FusionCensus], dict[str, dict[str, int]]]:
    """Every variant on every backend × precision × batch, each backend's models in rounds of their own."""
    latencies, op_profiles, fusion = [], [], []
    memory: dict[str, dict[str, int]] = {name: {} for name in variants}
    names = (inputs.name, inputs.output)
    for provider in settings.providers:
        backend = runtime.backend(provider)
        precisions = [p for p in settings.precisions if p in backend.precisions]
        opt_level = backend.opt_levels(settings.opt_levels)[0]
        for batch in settings.batch_sizes:
            x = inputs.batch(batch)
            cells = {
                (name, precision): _at_batch(
                    derived[(name, precision)] if precision in DERIVED else data, inputs, batch
                )
                for precision in precisions
                for name, (data, _) in variants.items()
            }
            targets = {}
            with runtime.collecting_only_new_objects():
                for (name, precision), data in cells.items():
                    gc.collect()
                    before = runtime.resident_bytes()
                    target = _first_run(backend, data, x, inputs, opt_level=opt_level, precision=precision)
                    if batch == settings.batch_sizes[0]:
                        memory[name][f"{provider} {precision}"] = max(runtime.resident_bytes() - before, 0)
                    targets[f"{name}|{precision}"] = target.run
            say(f"{provider}: timing {len(targets)} variants at batch {batch}")
            rounds = latency.interleave(targets, min_seconds=settings.min_time, min_runs=settings.min_runs)
            for (name, precision), data in cells.items():
                key, base = f"{name}|{precision}", f"original|{precision}"
                latencies.append(
                    LatencyResult(
                        model=name,
                        variant="as-given" if name == "original" else "swapped",
                        provider=provider,
                        batch=batch,
                        opt_level=opt_level,
                        mode="compute",
                        stats=latency.stats_from_ns(rounds.samples[key], batch=batch),
                        vs_baseline=latency.ratio(rounds, key, base),
                        precision=precision,
                        vs_baseline_ms=latency.difference_ms(rounds, key, base),
                    )
                )
                say(f"{provider} {precision}: per-op profile of {name} at batch {batch}")
                ops = backend.op_profile(
                    name,
                    data,
                    batch=batch,
                    opt_level=opt_level,
                    x=x,
                    precision=precision,
                    names=names,
                    activation_ops=sites.ACTIVATION_OPS,
                )
                op_profiles.append(replace(ops, precision=precision))
                if batch == settings.batch_sizes[0]:
                    census = backend.census(
                        name, data, opt_level=opt_level, precision=precision, activation_ops=sites.ACTIVATION_OPS
                    )
                    fusion.append(replace(census, precision=precision))
    return latencies, op_profiles, fusion, memory


def _first_run(backend, data: bytes, x: np.ndarray, inputs: Inputs, *, opt_level: str, precision: str):
    """Load a variant and run it once; a shape the model cannot take is the user's to fix, in one line."""
    try:
        loaded = backend.load(data, opt_level=opt_level, precision=precision)
        target = backend.compute_target(loaded, x, input_name=inputs.name, output_name=inputs.output)
        target.run()
    except ActprofError as exc:
        if isinstance(exc, UsageError | ProviderUnavailable) or not inputs.reshaped:
            raise
        cause = str(exc)
    except Exception as exc:  # ORT and OpenVINO raise their own types, with the cause in the first line
        cause = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__).strip()[:160]
    else:
        return target
    shape = "x".join(map(str, x.shape))
    raise UsageError(f"the model does not run at input shape {shape} on {backend.name} ({cause}); check --input-shape")


def _at_batch(data: bytes, inputs: Inputs, batch: int) -> bytes:
    """The variant declared at ``batch``'s input shape (runtimes plan memory for the declared shape)."""
    return with_input_shape(onnx.load_from_string(data), inputs, batch).SerializeToString()


def run_swap(
    model_path: Path,
    candidates: list[str],
    settings: ProfileSettings,
    *,
    out: Path,
    site_spec: str | None = None,
    input_shape: str | None = None,
    inputs_file: Path | None = None,
    seed: int = 0,
    say: Say = lambda _m: None,
) -> SwapRecord:
    """Find the sites, build and check the variants, derive precisions, profile, and write the variants."""
    from actprof import precision

    started = time.perf_counter()
    model = export.load_model_file(model_path)
    found = sites.find_sites(model)
    if not found:
        raise UsageError(
            f"{model_path} has no activation site actprof recognises (Relu, Gelu, x·Sigmoid(x)…); nothing to swap"
        )
    inputs = resolve_inputs(
        model, settings.batch_sizes, input_shape=parse_input_shape(input_shape), inputs_file=inputs_file, seed=seed
    )
    chosen = parse_sites(site_spec, len(found))
    say(f"{len(found)} activation sites; building {len(candidates)} variant(s) with {len(chosen)} replaced")
    variants = build_variants(model, found, chosen, candidates)
    derived: dict[tuple[str, str], bytes] = {}
    calibration = ""
    first = settings.batch_sizes[0]
    if "int8" in settings.precisions:
        sample = np.concatenate([inputs.batch(first) for _ in range(max(1, -(-8 // first)))])
        say(f"int8: quantizing {len(variants)} variant(s)")
        fixed = {name: _at_batch(data, inputs, first) for name, (data, _) in variants.items()}
        quantized = precision.quantize_all(fixed, sample, batch=first)
        derived |= {(name, "int8"): data for name, data in quantized.items()}
        calibration = f"{len(sample)} inputs: {inputs.source(inputs_file)} (not representative data unless given)"
    if "fp16" in settings.precisions:
        derived |= {(name, "fp16"): precision.to_fp16(data) for name, (data, _) in variants.items()}
    statuses = [runtime.backend(p).status() for p in settings.providers]
    latencies, op_profiles, fusion, memory = profile_variants(variants, inputs, settings, derived=derived, say=say)
    written = []
    for name, (data, decomposed) in variants.items():
        file = f"{Path(model_path).stem}.{name}.onnx"
        storage.write_bytes_atomic(out / "variants" / file, data)
        replaced = 0 if name == "original" else len(chosen)
        written.append(
            SwapVariant(name, f"variants/{file}", storage.sha256(data), len(data), replaced, decomposed, memory[name])
        )
    first = settings.batch_sizes[0]
    return SwapRecord(
        **storage.header("swap"),
        model=str(model_path),
        model_sha256=storage.sha256(Path(model_path).read_bytes()),
        opset=sites.opset(model),
        inputs=[InputSpec(inputs.name, list(inputs.shapes[first]), str(inputs.dtype), inputs.source(inputs_file))],
        sites=site_records(model, found, inputs, first),
        replaced=chosen,
        variants=written,
        settings=settings,
        providers=statuses,
        latency=latencies,
        op_profiles=op_profiles,
        fusion=fusion,
        seconds=time.perf_counter() - started,
        calibration=calibration,
        batch_reshapes=batch_reshapes(model, inputs),
    )
