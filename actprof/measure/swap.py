"""Bring your own model: what would ELU (or GELU, SiLU…) cost in *this* network, on *this* runtime?

``swap`` finds every activation site of an ONNX model (``sites``), writes one variant per candidate with
the chosen sites replaced (weights untouched, each variant through the full ONNX checker), and profiles
the original and the variants side by side with the harness ``profile`` uses: each backend's models in
interleaved rounds of their own, ratios to the original with CIs, per-op share, what each runtime fused,
memory. The variants are **not retrained**: their cost is measured, and how far their outputs move from the
original's on the same inputs (``distance``), never their accuracy after fine-tuning. By default only the hidden
activations are replaced; gates and output heads (``graphs.sites`` roles) are listed and left alone.
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from actprof import activations, runtimes
from actprof.errors import ActprofError, ModelFileError, ProviderUnavailable, UsageError
from actprof.export import precision
from actprof.export.precision import DERIVED
from actprof.graphs import sites
from actprof.graphs.files import load_model_file
from actprof.measure import harness
from actprof.measure.config import SwapOptions
from actprof.measure.declared import batch_reshapes, with_input_shape
from actprof.measure.distance import output_distances, site_sizes
from actprof.measure.inputs import Choices, Inputs, parse_input_shape, parse_named_numbers, resolve_inputs
from actprof.measure.memory import collecting_only_new_objects, resident_bytes
from actprof.schema.profiling import FusionCensus, LatencyResult, OpProfile
from actprof.schema.storage import header, sha256, write_bytes_atomic
from actprof.schema.swap import InputSpec, SiteRecord, SwapRecord, SwapVariant
from actprof.settings.profile import ProfileSettings

Say = Callable[[str], None]


def site_records(model: onnx.ModelProto, found: list[sites.Site], inputs: Inputs, batch: int) -> list[SiteRecord]:
    """Each site with its output size at ``batch`` (measured in one run of the model at that input shape)."""
    feed = inputs.batch(batch)
    sizes = site_sizes(with_input_shape(model, inputs, batch), [s.output for s in found], feed)
    records = []
    for site in found:
        names = [model.graph.node[i].name or model.graph.node[i].op_type for i in site.nodes]
        records.append(SiteRecord(site.kind, names, site.input, site.output, sizes.get(site.output), site.role))
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


def parse_sites(spec: str | None, found: list[sites.Site], roles: tuple[str, ...]) -> list[int]:
    """The sites to replace: ``--sites`` as listed (1-based numbers, ranges ``3-8``, or a kind: its first word
    such as ``gelu``, ``hardswish``, ``clip``, or the name of the activation it is, as ``--to`` spells it:
    ``relu6``, ``quick_gelu``, ``hard_sigmoid``; any role), ``all``, or else every site whose role is in
    ``roles`` (``--roles``: hidden activations by default)."""
    if not spec:
        return [i for i, site in enumerate(found) if site.role in roles]
    if spec.strip().lower() == "all":
        return list(range(len(found)))
    chosen: set[int] = set()
    for item in (s.strip().lower() for s in spec.split(",") if s.strip()):
        chosen |= _site_item(item, found, spec)
    if not chosen:
        raise UsageError(f"--sites {spec!r} names no site")
    return sorted(chosen)


def _site_item(item: str, found: list[sites.Site], spec: str) -> set[int]:
    first, dash, last = item.partition("-")
    if first.isdigit() and (not dash or last.isdigit()):
        low, high = int(first), int(last or first)
        if not 1 <= low <= high <= len(found):
            raise UsageError(f"--sites takes numbers from 1 to {len(found)}, got {spec!r}")
        return set(range(low - 1, high))
    picked = {i for i, s in enumerate(found) if item in kind_names(s.kind)}
    if not picked:
        names = sorted({name for s in found for name in kind_names(s.kind)})
        raise UsageError(f"--sites {item!r}: no site of that kind; this model's sites answer to {', '.join(names)}")
    return picked


@functools.cache
def kind_names(kind: str) -> frozenset[str]:
    """The names ``--sites`` picks a site kind by: its first word (``clip`` for ``Clip (ReLU6)``), and the
    activation it computes as the table names it (``relu6``): a pattern's, or else that of the activation
    written as this op alone (where several are, as ``gelu`` and ``gelu_tanh``, those without attributes)."""
    word = kind.split(" ")[0]
    names = {word.lower()}
    if kind in activations.patterns():
        return frozenset(names | {activations.patterns()[kind].name})
    written = [a for a in activations.candidates().values() if a.onnx.ops == (word,)]
    plain = [a for a in written if not a.onnx.attrs] or written
    return frozenset(names | {a.name for a in plain})


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
    names = (inputs.names[0], inputs.output)
    for provider in settings.providers:
        backend = _backend_for(provider, inputs)
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


def _backend_for(provider: str, inputs: Inputs):
    """The provider's backend, refused where it cannot feed the model's inputs."""
    backend = runtimes.backend(provider)
    if len(inputs.feeds) > 1 and not backend.several_inputs:
        raise UsageError(
            f"--provider {provider} times models with one input; this one reads {', '.join(inputs.names)}: "
            "profile it with --provider cpu or openvino"
        )
    return backend


def _first_run(backend, data: bytes, x: dict[str, np.ndarray], inputs: Inputs, *, opt_level: str, precision: str):
    """Load a variant and run it once; a shape the model cannot take is the user's to fix, in one line."""
    try:
        loaded = backend.load(data, opt_level=opt_level, precision=precision)
        target = backend.compute_target(loaded, x, output_name=inputs.output)
        target.run()
    except ActprofError as exc:
        if isinstance(exc, UsageError | ProviderUnavailable) or not inputs.reshaped:
            raise
        cause = str(exc)
    except Exception as exc:  # ORT and OpenVINO raise their own types, with the cause in the first line
        cause = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__).strip()[:160]
    else:
        return target
    shape = ", ".join(f"{name} {'x'.join(map(str, array.shape)) or 'scalar'}" for name, array in x.items())
    raise UsageError(f"the model does not run at input shape {shape} on {backend.name} ({cause}); check --input-shape")


def _at_batch(data: bytes, inputs: Inputs, batch: int) -> bytes:
    """The variant declared at ``batch``'s input shape (runtimes plan memory for the declared shape)."""
    return with_input_shape(onnx.load_from_string(data), inputs, batch).SerializeToString()


def check_swap(
    model_path: Path, options: SwapOptions, batch_sizes: list[int], providers: Sequence[str] = ()
) -> tuple[onnx.ModelProto, list[sites.Site], Inputs, list[int]]:
    """Everything the user chose that can be refused before a runtime starts: the model file, its sites, the
    inputs (and the ``providers`` that cannot feed them), the sites to replace."""
    model = load_model_file(model_path)
    found = sites.find_sites(model)
    if not found:
        raise UsageError(
            f"{model_path} has no activation site actprof recognises (Relu, Gelu, x·Sigmoid(x)…); nothing to swap"
        )
    inputs = resolve_inputs(model, batch_sizes, _choices(options))
    for provider in providers:
        _backend_for(provider, inputs)
    chosen = parse_sites(options.sites, found, options.roles)
    if not chosen:
        raise UsageError(f"no site has the role {', '.join(options.roles)}; list others with --roles or --sites")
    return model, found, inputs, chosen


def list_sites(
    model_path: Path, options: SwapOptions, batch: int = 1, providers: Sequence[str] = ()
) -> tuple[list[SiteRecord], list[int], list[InputSpec]]:
    """Every site of the model with its role and size at ``batch``, the ones ``options`` would replace, and
    what each input gets: what ``swap --list`` prints before anything is profiled."""
    model, found, inputs, chosen = check_swap(model_path, options, [batch], providers)
    return site_records(model, found, inputs, batch), chosen, input_specs(inputs, batch)


def input_specs(inputs: Inputs, batch: int) -> list[InputSpec]:
    """Each input's name, shape at ``batch``, element type, and where its values come from."""
    return [InputSpec(f.name, list(f.shapes[batch]), str(f.dtype), f.source) for f in inputs.feeds]


def run_swap(
    model_path: Path,
    options: SwapOptions,
    settings: ProfileSettings,
    *,
    out: Path,
    say: Say = lambda _m: None,
    checked: tuple[onnx.ModelProto, list[sites.Site], Inputs, list[int]] | None = None,
) -> SwapRecord:
    """Find the sites, build and check the variants, derive precisions, compare outputs, profile, and write the
    variants. ``checked``: what ``check_swap`` returned for these options, where the caller already ran it."""
    started = time.perf_counter()
    model, found, inputs, chosen = checked or check_swap(model_path, options, settings.batch_sizes)
    say(f"{len(found)} activation sites; building {len(options.candidates)} variant(s) with {len(chosen)} replaced")
    variants = build_variants(model, found, chosen, options.candidates)
    first = settings.batch_sizes[0]
    fixed = {name: _at_batch(data, inputs, first) for name, (data, _) in variants.items()}
    derived, calibration = _derived(variants, fixed, inputs, settings, options.inputs, say=say)
    statuses = [runtimes.backend(p).status() for p in settings.providers]
    latencies, op_profiles, fusion, memory = profile_variants(variants, inputs, settings, derived=derived, say=say)
    distances = output_distances(fixed, inputs, first, say=say)
    written = []
    for name, (data, decomposed) in variants.items():
        file = f"{Path(model_path).stem}.{name}.onnx"
        write_bytes_atomic(out / "variants" / file, data)
        replaced = 0 if name == "original" else len(chosen)
        written.append(
            SwapVariant(
                name,
                f"variants/{file}",
                sha256(data),
                len(data),
                replaced,
                decomposed,
                memory[name],
                distances.get(name),
            )
        )
    return SwapRecord(
        **header("swap"),
        model=str(model_path),
        model_sha256=sha256(Path(model_path).read_bytes()),
        opset=sites.opset(model),
        inputs=input_specs(inputs, first),
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


def _choices(options: SwapOptions) -> Choices:
    return Choices(
        shapes=parse_input_shape(options.input_shape),
        values=parse_named_numbers(options.input_value, "--input-value"),
        vocab=parse_named_numbers(options.vocab_size, "--vocab-size", integer=True),
        inputs_file=options.inputs,
        seed=options.seed,
    )


def _derived(
    variants: dict[str, tuple[bytes, bool]],
    fixed: dict[str, bytes],
    inputs: Inputs,
    settings: ProfileSettings,
    inputs_file: Path | None,
    *,
    say: Say,
) -> tuple[dict[tuple[str, str], bytes], str]:
    """The int8 and fp16 models the precisions asked for need, and what calibrated the int8 ones."""
    derived: dict[tuple[str, str], bytes] = {}
    calibration = ""
    first = settings.batch_sizes[0]
    if "int8" in settings.precisions:
        feeds = [inputs.batch(first, draw=k) for k in range(max(1, -(-8 // first)))]
        say(f"int8: quantizing {len(variants)} variant(s)")
        quantized = precision.quantize_all(fixed, feeds, batch=first)
        derived |= {(name, "int8"): data for name, data in quantized.items()}
        source = (
            f"{inputs_file.name} (given)"
            if inputs_file
            else f"random inputs, seed {inputs.seed} (not representative data)"
        )
        calibration = f"{len(feeds) * first} inputs: {source}"
    if "fp16" in settings.precisions:
        derived |= {(name, "fp16"): precision.to_fp16(data) for name, (data, _) in variants.items()}
    return derived, calibration
