"""The profile stage: latency per backend × batch, per-op time, fusion census and the ablation.

Latency comes from loaded models timed in interleaved rounds (``harness.interleave``); per-op time and
the census from each backend's own separate runs, never from the timed ones. Which runtime does the work
is the backend's business (``runtimes``): nothing here creates a session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import onnx

from actprof import runtimes
from actprof.data.mnist import MNIST
from actprof.errors import ProviderUnavailable, UsageError
from actprof.export.precision import Deployment, prepare
from actprof.graphs import surgery
from actprof.measure import harness
from actprof.measure.cells import cell_model, deployment_cell, images, model_ref, sample_deployment, warm_up
from actprof.measure.memory import collecting_only_new_objects
from actprof.runtimes import attribution
from actprof.runtimes.base import Backend, Target
from actprof.runtimes.reference import cpu_logits
from actprof.schema.environment import gpu_info
from actprof.schema.profiling import (
    AblationResult,
    DeploymentCell,
    FusionCensus,
    LatencyResult,
    OpProfile,
    ProfileRecord,
)
from actprof.schema.storage import header
from actprof.schema.training import ModelRecord
from actprof.settings.profile import ProfileSettings

VARIANTS = ("as-trained", "relu-swap", "identity")
Progress = Callable[[str], None]


def profile_models(
    models: list[tuple[Path, ModelRecord]],
    settings: ProfileSettings,
    mnist: MNIST,
    *,
    baseline: str | None,
    say: Progress = lambda _m: None,
) -> tuple[ProfileRecord, dict[str, bytes]]:
    """Derive the int8/fp16 models the precisions need, then profile everything; the record and the derived
    files by name (nothing is written here). MNIST gives the test split every cell is scored on and, for
    int8, the calibration images."""
    fp32 = {record.name: (path.name, path.read_bytes()) for path, record in models}
    deployment = prepare(fp32, settings.precisions, mnist, calibration_images=settings.calibration_images, say=say)
    record = run_profile(models, settings, baseline=baseline, on_progress=say, deployment=deployment)
    return record, dict(deployment.derived.values())


def run_profile(
    models: list[tuple[Path, ModelRecord]],
    settings: ProfileSettings,
    *,
    baseline: str | None = "relu",
    on_progress: Progress | None = None,
    deployment: Deployment | None = None,
) -> ProfileRecord:
    """Profile every model on every requested provider and precision; providers that do not bind are refused.

    Each backend's models are timed in interleaved rounds of their own (two runtimes' thread pools never
    share a round). ``deployment`` carries the derived int8/fp16 models and the test split every cell is
    scored on; without it only fp32 runs, scored on the bundled sample's test split.
    """
    started = time.perf_counter()
    say = on_progress or (lambda _m: None)
    deployment = deployment or sample_deployment()
    backends = [runtimes.backend(p) for p in settings.providers]
    statuses = [b.status() for b in backends]
    for status in statuses:
        if not status.binds:
            raise ProviderUnavailable(status.reason)
    files = {record.name: (path.name, path.read_bytes()) for path, record in models}
    loaded = {name: data for name, (_, data) in files.items()}
    baseline = baseline if baseline in loaded else None
    _check_cuda_graphs(loaded, settings)
    latencies: list[LatencyResult] = []
    ablations: list[AblationResult] = []
    op_profiles: list[OpProfile] = []
    fusion: list[FusionCensus] = []
    deployments: list[DeploymentCell] = []
    for model in loaded.values():  # every cell's reference, before any cell measures its memory
        cpu_logits(model, deployment.images)
    fp32_activations = {
        name: attribution.activation_counts(onnx.load_from_string(data)) for name, data in loaded.items()
    }
    for backend in backends:
        cells = {
            (name, precision): cell_model(deployment, files, name, precision)
            for precision in settings.precisions
            if backend.runs(precision)
            for name in loaded
        }
        warm_up(backend, cells, settings)
        with collecting_only_new_objects():
            for (name, precision), (file, data) in cells.items():
                say(f"{backend.name} {precision}: accuracy and memory of {name}")
                cell = deployment_cell(backend, name, precision, file, data, deployment, loaded[name], settings)
                deployments.append(cell)
        variants = _variants(cells, settings)  # the same graphs at every opt level and batch
        timed_as = _ablation_twins(variants)
        for opt_level in backend.opt_levels(settings.opt_levels):
            for (name, precision), (_, data) in cells.items():
                say(f"{backend.name} {precision}: fusion census of {name} at opt level {opt_level}")
                census = replace(
                    backend.census(name, data, opt_level=opt_level, precision=precision), precision=precision
                )
                if precision == "int8":
                    int8_activations = attribution.activation_counts(onnx.load_from_string(data))
                    census = attribution.with_quantization_folding(census, fp32_activations[name], int8_activations)
                fusion.append(census)
            for batch in settings.batch_sizes:
                x = images(batch)
                lat, abl = _measure(cells, variants, timed_as, settings, backend, opt_level, batch, x, baseline, say)
                latencies += lat
                ablations += abl
                for (name, precision), (_, data) in (cells if backend.has_op_profiler else {}).items():
                    say(f"{backend.name} {precision}: per-op profile of {name} at batch {batch}")
                    ops = harness.op_profile(
                        backend, name, data, batch=batch, opt_level=opt_level, x=x, precision=precision
                    )
                    op_profiles.append(replace(ops, precision=precision))
    return ProfileRecord(
        **header("profile"),
        gpu=gpu_info() if "cuda" in settings.providers else None,
        settings=settings,
        providers=statuses,
        baseline=baseline,
        models=[model_ref(path, record) for path, record in models],
        latency=latencies,
        ablation=ablations,
        op_profiles=op_profiles,
        fusion=fusion,
        seconds=time.perf_counter() - started,
        deployments=deployments,
        calibration=deployment.calibration,
    )


def variants_of(name: str, model: bytes, *, ablation: bool) -> dict[str, bytes]:
    """The model as trained and, for the ablation, the same weights with ReLU and with identity."""
    found = {"as-trained": model}
    if ablation:
        import onnx

        proto = onnx.load_from_string(model)
        if name != "relu":
            found["relu-swap"] = surgery.replace_activation(proto, "Relu").SerializeToString()
        found["identity"] = surgery.replace_activation(proto, "Identity").SerializeToString()
    return found


def _variants(cells, settings) -> dict[tuple[str, str, str], bytes]:
    """Every (model, precision, variant) a measurement times: each model's as trained, then its ablation."""
    variants = {}
    for (name, precision), (_, model) in cells.items():
        ablation = settings.ablation and precision == "fp32"
        for variant, data in variants_of(name, model, ablation=ablation).items():
            variants[(name, precision, variant)] = data
    return variants


def _ablation_twins(variants: dict[tuple[str, str, str], bytes]) -> dict[tuple[str, str, str], tuple[str, str, str]]:
    """Ablation variants that are, weights aside, the graph of a model or variant timed at the same precision
    → that one.

    Every model's ReLU swap is the ReLU model's graph, and all identity swaps are one graph: 26 of the 41
    sessions of the default run were 2 graphs timed 13 or 14 times over. The weights' values change the
    numbers an fp32 runtime computes, not its work (graph.computation_key), so each graph is timed once and
    its runs stand for its twins, in the same rounds as everything else."""
    first_of: dict[tuple[str, str], tuple[str, str, str]] = {}
    twins = {}
    in_order = sorted(variants.items(), key=lambda item: item[0][2] != "as-trained")  # models before swaps
    for key, data in in_order:
        same = (key[1], surgery.computation_key(onnx.load_from_string(data)))
        if key[2] != "as-trained" and same in first_of:
            twins[key] = first_of[same]
        first_of.setdefault(same, key)
    return twins


def _load_named(
    backend: Backend,
    name: str,
    variant: str,
    data: bytes,
    opt_level: str,
    *,
    cuda_graph: bool,
    precision="fp32",
):
    """backend.load, with a refusal that says which model and variant it is about."""
    try:
        return backend.load(data, opt_level=opt_level, precision=precision, cuda_graph=cuda_graph)
    except UsageError as exc:
        raise UsageError(f"{name} ({variant}): {exc}") from None


def _check_cuda_graphs(loaded: dict[str, bytes], settings: ProfileSettings) -> None:
    """With --cuda-graph, refuse a model ORT would not run wholly on the GPU before anything is timed
    (the CPU pass comes first under --provider all and would otherwise be thrown away)."""
    if not (settings.cuda_graph and "cuda" in settings.providers):
        return
    cuda = runtimes.backend("cuda")
    for name, model in loaded.items():
        for variant, data in variants_of(name, model, ablation=settings.ablation).items():
            for opt_level in settings.opt_levels:
                _load_named(cuda, name, variant, data, opt_level, cuda_graph=True)


def _round_key(name: str, precision: str, variant: str = "as-trained", mode: str = "compute") -> str:
    """The name a (model, precision, variant, mode) is timed under in an interleaved measurement."""
    return f"{name}|{precision}|{variant}|{mode}"


def _measure(cells, variants, timed_as, settings, backend, opt_level, batch, x, baseline, say):
    """One interleaved measurement of every (model, precision, variant, mode) on one backend × opt level × batch.

    ``variants`` are ``_variants(cells, settings)`` (the ablation swaps activations in the fp32 graph, so it
    runs for fp32 cells only) and ``timed_as`` their ``_ablation_twins``."""
    cuda_graph = settings.cuda_graph and backend.name == "cuda"
    targets: dict[tuple[str, str, str, str], Target] = {}
    for (name, precision, variant), data in variants.items():
        if (name, precision, variant) in timed_as:
            continue
        session = _load_named(backend, name, variant, data, opt_level, cuda_graph=cuda_graph, precision=precision)
        targets[(name, precision, variant, "compute")] = backend.compute_target(session, x)
        end_to_end = backend.end_to_end_target(data, x, opt_level=opt_level) if variant == "as-trained" else None
        if end_to_end is not None:  # fed from host memory: the copies included
            targets[(name, precision, variant, "end-to-end")] = end_to_end
    twins = f"; {len(timed_as)} ablation variants are the graph of one of them" if timed_as else ""
    say(f"{backend.name}: timing {len(targets)} sessions at batch {batch}, opt level {opt_level}{twins}")
    keyed = {_round_key(*target_key): target.run for target_key, target in targets.items()}
    rounds = harness.interleave(keyed, min_seconds=settings.min_time, min_runs=settings.min_runs)
    for twin, timed in timed_as.items():  # one graph's runs stand for each variant that is that graph
        rounds.samples[_round_key(*twin)] = rounds.samples[_round_key(*timed)]
        rounds.rounds[_round_key(*twin)] = rounds.rounds[_round_key(*timed)]
    measured = [
        (*variant, mode)
        for variant in variants
        for mode in ("compute", "end-to-end")
        if (*variant, mode) in targets or (variant in timed_as and mode == "compute")
    ]

    results = []
    for name, precision, variant, mode in measured:
        k = _round_key(name, precision, variant, mode)
        vs = vs_ms = None
        if baseline and variant == "as-trained" and (baseline, precision) in cells:
            vs = harness.ratio(rounds, k, _round_key(baseline, precision, "as-trained", mode))
            vs_ms = harness.difference_ms(rounds, k, _round_key(baseline, precision, "as-trained", mode))
        results.append(
            LatencyResult(
                model=name,
                variant=variant,
                provider=backend.name,
                batch=batch,
                opt_level=opt_level,
                mode=mode,
                stats=harness.stats_from_ns(rounds.samples[k], batch=batch),
                vs_baseline=vs,
                precision=precision,
                vs_baseline_ms=vs_ms,
            )
        )
    ablations = []
    p50 = {(r.model, r.variant): r.stats.p50_ms for r in results if r.mode == "compute" and r.precision == "fp32"}
    for name, precision in cells:
        if not (settings.ablation and precision == "fp32"):
            continue
        has_relu_swap = (name, "relu-swap") in p50
        ablations.append(
            AblationResult(
                model=name,
                provider=backend.name,
                batch=batch,
                opt_level=opt_level,
                as_trained_ms=p50[(name, "as-trained")],
                relu_swap_ms=p50[(name, "relu-swap")] if has_relu_swap else None,
                identity_ms=p50[(name, "identity")],
                activation_cost_ms=harness.difference_ms(
                    rounds, _round_key(name, "fp32"), _round_key(name, "fp32", "identity")
                ),
                penalty_vs_relu_ms=(
                    harness.difference_ms(rounds, _round_key(name, "fp32"), _round_key(name, "fp32", "relu-swap"))
                    if has_relu_swap
                    else None
                ),
            )
        )
    return results, ablations
