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
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from actprof import runtimes
from actprof.errors import ActprofError, ModelFileError, ProviderUnavailable, UsageError
from actprof.export import precision
from actprof.export.precision import DERIVED
from actprof.graphs import sites
from actprof.graphs.files import load_model_file
from actprof.measure import harness
from actprof.measure.config import SwapOptions
from actprof.measure.inputs import Inputs, batch_reshapes, parse_input_shape, resolve_inputs, with_input_shape
from actprof.measure.memory import collecting_only_new_objects, resident_bytes
from actprof.schema.profiling import FusionCensus, LatencyResult, OpProfile
from actprof.schema.storage import header, sha256, write_bytes_atomic
from actprof.schema.swap import InputSpec, SiteRecord, SwapRecord, SwapVariant
from actprof.settings.parse import parse_positive_ints
from actprof.settings.profile import ProfileSettings

Say = Callable[[str], None]


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
        backend = runtimes.backend(provider)
        precisions = [p for p in settings.precisions if backend.runs(p)]
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
            with collecting_only_new_objects():
                for (name, precision), data in cells.items():
                    gc.collect()
                    before = resident_bytes()
                    target = _first_run(backend, data, x, inputs, opt_level=opt_level, precision=precision)
                    if batch == settings.batch_sizes[0]:
                        memory[name][f"{provider} {precision}"] = max(resident_bytes() - before, 0)
                    targets[f"{name}|{precision}"] = target.run
            say(f"{provider}: timing {len(targets)} variants at batch {batch}")
            rounds = harness.interleave(targets, min_seconds=settings.min_time, min_runs=settings.min_runs)
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
                        stats=harness.stats_from_ns(rounds.samples[key], batch=batch),
                        vs_baseline=harness.ratio(rounds, key, base),
                        precision=precision,
                        vs_baseline_ms=harness.difference_ms(rounds, key, base),
                    )
                )
                if backend.has_op_profiler:
                    say(f"{provider} {precision}: per-op profile of {name} at batch {batch}")
                    ops = harness.op_profile(
                        backend,
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
    model_path: Path, options: SwapOptions, settings: ProfileSettings, *, out: Path, say: Say = lambda _m: None
) -> SwapRecord:
    """Find the sites, build and check the variants, derive precisions, profile, and write the variants."""
    candidates, inputs_file, seed = options.candidates, options.inputs, options.seed
    started = time.perf_counter()
    model = load_model_file(model_path)
    found = sites.find_sites(model)
    if not found:
        raise UsageError(
            f"{model_path} has no activation site actprof recognises (Relu, Gelu, x·Sigmoid(x)…); nothing to swap"
        )
    inputs = resolve_inputs(
        model,
        settings.batch_sizes,
        input_shape=parse_input_shape(options.input_shape),
        inputs_file=inputs_file,
        seed=seed,
    )
    chosen = parse_sites(options.sites, len(found))
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
    statuses = [runtimes.backend(p).status() for p in settings.providers]
    latencies, op_profiles, fusion, memory = profile_variants(variants, inputs, settings, derived=derived, say=say)
    written = []
    for name, (data, decomposed) in variants.items():
        file = f"{Path(model_path).stem}.{name}.onnx"
        write_bytes_atomic(out / "variants" / file, data)
        replaced = 0 if name == "original" else len(chosen)
        written.append(
            SwapVariant(name, f"variants/{file}", sha256(data), len(data), replaced, decomposed, memory[name])
        )
    first = settings.batch_sizes[0]
    return SwapRecord(
        **header("swap"),
        model=str(model_path),
        model_sha256=sha256(Path(model_path).read_bytes()),
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
