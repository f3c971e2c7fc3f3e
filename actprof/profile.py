"""The profile stage: latency per backend × batch, per-op time, fusion census and the ablation.

Latency comes from loaded models timed in interleaved rounds (``latency.interleave``); per-op time and
the census from each backend's own separate runs, never from the timed ones. Which runtime does the work
is the backend's business (``runtime``): nothing here creates a session.
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from actprof import attribution, environment, export, graph, latency, runtime, storage
from actprof.errors import ProviderUnavailable, UsageError
from actprof.precision import DERIVED, Deployment
from actprof.records import (
    AblationResult,
    DeploymentCell,
    FusionCensus,
    LatencyResult,
    ModelRecord,
    ModelRef,
    OpProfile,
    ProfileRecord,
    ProfileSettings,
)
from actprof.settings import OPT_LEVELS, parse_choices, parse_positive_ints

VARIANTS = ("as-trained", "relu-swap", "identity")
Progress = Callable[[str], None]


def parse_batch_sizes(spec: str, *, name: str = "--batch-sizes", limit: int = 65536) -> list[int]:
    return parse_positive_ints(spec, name, limit=limit)


def parse_opt_levels(spec: str) -> list[str]:
    return parse_choices(spec, OPT_LEVELS, "--opt-level")


@functools.cache
def _image_pool() -> np.ndarray:
    from actprof.data import load_mnist, to_tensor

    return to_tensor(load_mnist(dataset="sample", log=lambda _m: None).test_images).numpy()


def images(batch: int) -> np.ndarray:
    """A batch of real MNIST test images (the bundled sample, tiled past 2,000), float32 NCHW."""
    pool = _image_pool()
    reps = -(-batch // len(pool))
    return np.ascontiguousarray(np.concatenate([pool] * reps)[:batch])


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
    deployment = deployment or _sample_deployment()
    backends = [runtime.backend(p) for p in settings.providers]
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
        export.cpu_logits(model, deployment.images)
    fp32_activations = {
        name: attribution.activation_counts(onnx.load_from_string(data)) for name, data in loaded.items()
    }
    for backend in backends:
        cells = {
            (name, precision): _cell_model(deployment, files, name, precision)
            for precision in settings.precisions
            if precision in backend.precisions
            for name in loaded
        }
        _warm_up(backend, cells, settings)
        with runtime.collecting_only_new_objects():
            for (name, precision), (file, data) in cells.items():
                say(f"{backend.name} {precision}: accuracy and memory of {name}")
                cell = _deployment_cell(backend, name, precision, file, data, deployment, loaded[name], settings)
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
                for (name, precision), (_, data) in cells.items():
                    say(f"{backend.name} {precision}: per-op profile of {name} at batch {batch}")
                    ops = backend.op_profile(name, data, batch=batch, opt_level=opt_level, x=x, precision=precision)
                    op_profiles.append(replace(ops, precision=precision))
    return ProfileRecord(
        **storage.header("profile"),
        gpu=environment.gpu_info() if "cuda" in settings.providers else None,
        settings=settings,
        providers=statuses,
        baseline=baseline,
        models=[_model_ref(path, record) for path, record in models],
        latency=latencies,
        ablation=ablations,
        op_profiles=op_profiles,
        fusion=fusion,
        seconds=time.perf_counter() - started,
        deployments=deployments,
        calibration=deployment.calibration,
    )


def _warm_up(backend, cells, settings) -> None:
    """Load and run one model of every precision once, unmeasured: the runtime's one-off set-up (kernels,
    thread pools, libraries) is then charged to no cell's memory."""
    for precision in dict.fromkeys(precision for _, precision in cells):
        _, data = next(cell for (_, p), cell in cells.items() if p == precision)
        loaded = backend.load(data, opt_level=backend.opt_levels(["all"])[0], precision=precision)
        backend.compute_target(loaded, images(min(settings.batch_sizes))).run()


def _cell_model(deployment: Deployment, files, name: str, precision: str) -> tuple[str, bytes]:
    """The model a cell runs: the derived one for int8/fp16 (never the fp32 model under their label)."""
    if precision in DERIVED:
        if (name, precision) not in deployment.derived:
            raise ValueError(f"no {precision} model was derived for {name}: run precision.prepare first")
        return deployment.derived[(name, precision)]
    return files[name]


def _sample_deployment() -> Deployment:
    from actprof.data import load_mnist
    from actprof.precision import prepare

    return prepare({}, ["fp32"], load_mnist(dataset="sample", log=lambda _m: None), calibration_images=0)


def _deployment_cell(
    backend, name, precision, file, data, deployment: Deployment, fp32_model: bytes, settings
) -> DeploymentCell:
    """Load one cell: the memory it adds (loaded and run once at the smallest profiled batch), then its score
    on the whole test split (accuracy, agreement with the fp32 model)."""
    gc.collect()
    before = runtime.resident_bytes()
    loaded = backend.load(data, opt_level=backend.opt_levels(["all"])[0], precision=precision)
    backend.compute_target(loaded, images(min(settings.batch_sizes))).run()
    added = runtime.resident_bytes() - before
    reference = export.cpu_logits(fp32_model, deployment.images)  # what every cell is compared with
    # The CPU fp32 cell runs the very session (same model and options) the reference came from.
    same_session = backend.name == "cpu" and precision == "fp32"
    logits = reference if same_session else _logits(backend, loaded, deployment.images)
    return DeploymentCell(
        model=name,
        provider=backend.name,
        precision=precision,
        runs_as=backend.runs_as(loaded, precision),
        threads=backend.threads(loaded),
        file=file,
        sha256=storage.sha256(data),
        size_bytes=len(data),
        accuracy=float(np.mean(logits.argmax(1) == deployment.labels)),
        test_images=len(deployment.labels),
        dataset=deployment.dataset,
        argmax_agreement=float(np.mean(logits.argmax(1) == reference.argmax(1))),
        max_abs_logit_diff=float(np.max(np.abs(logits - reference))),
        rss_added_bytes=max(added, 0),
    )


def _logits(backend, loaded, x: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """Outputs for every image, through timing targets of at most ``chunk`` images (bound buffers on a GPU)."""
    outputs = []
    targets: dict[int, runtime.Target] = {}
    for start in range(0, len(x), chunk):
        batch = np.ascontiguousarray(x[start : start + chunk])
        target = targets.get(len(batch))
        if target is None:
            target = targets[len(batch)] = backend.compute_target(loaded, batch)
        target.load(batch)
        target.run()  # on a GPU, output() reads the buffer the last run wrote
        outputs.append(np.array(target.output(), dtype=np.float32))
    return np.concatenate(outputs)


def _model_ref(path: Path, record: ModelRecord) -> ModelRef:
    return ModelRef(
        name=record.name,
        file=path.name,
        sha256=record.export.sha256,
        dataset=record.dataset.kind,
        test_accuracy=record.export.onnx_test_accuracy,
        activation_ops=list(record.export.activation_census),
        decomposed=record.export.decomposed,
    )


def variants_of(name: str, model: bytes, *, ablation: bool) -> dict[str, bytes]:
    """The model as trained and, for the ablation, the same weights with ReLU and with identity."""
    found = {"as-trained": model}
    if ablation:
        import onnx

        proto = onnx.load_from_string(model)
        if name != "relu":
            found["relu-swap"] = graph.replace_activation(proto, "Relu").SerializeToString()
        found["identity"] = graph.replace_activation(proto, "Identity").SerializeToString()
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
        same = (key[1], graph.computation_key(onnx.load_from_string(data)))
        if key[2] != "as-trained" and same in first_of:
            twins[key] = first_of[same]
        first_of.setdefault(same, key)
    return twins


def _load_named(
    backend: runtime.Backend,
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
    cuda = runtime.backend("cuda")
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
    targets: dict[tuple[str, str, str, str], runtime.Target] = {}
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
    rounds = latency.interleave(keyed, min_seconds=settings.min_time, min_runs=settings.min_runs)
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
            vs = latency.ratio(rounds, k, _round_key(baseline, precision, "as-trained", mode))
            vs_ms = latency.difference_ms(rounds, k, _round_key(baseline, precision, "as-trained", mode))
        results.append(
            LatencyResult(
                model=name,
                variant=variant,
                provider=backend.name,
                batch=batch,
                opt_level=opt_level,
                mode=mode,
                stats=latency.stats_from_ns(rounds.samples[k], batch=batch),
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
                activation_cost_ms=latency.difference_ms(
                    rounds, _round_key(name, "fp32"), _round_key(name, "fp32", "identity")
                ),
                penalty_vs_relu_ms=(
                    latency.difference_ms(rounds, _round_key(name, "fp32"), _round_key(name, "fp32", "relu-swap"))
                    if has_relu_swap
                    else None
                ),
            )
        )
    return results, ablations
