"""The profile stage: latency per backend × batch, per-op time, fusion census and the ablation.

Latency comes from loaded models timed in interleaved rounds (``latency.interleave``); per-op time and
the census from each backend's own separate runs, never from the timed ones. Which runtime does the work
is the backend's business (``runtime``): nothing here creates a session.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from actprof import graph, latency, runtime, storage
from actprof.errors import ProviderUnavailable, UsageError
from actprof.records import (
    AblationResult,
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
) -> ProfileRecord:
    """Profile every model on every requested provider; providers that do not bind are refused."""
    started = time.perf_counter()
    say = on_progress or (lambda _m: None)
    backends = [runtime.backend(p) for p in settings.providers]
    statuses = [b.status() for b in backends]
    for status in statuses:
        if not status.binds:
            raise ProviderUnavailable(status.reason)
    loaded = {record.name: path.read_bytes() for path, record in models}
    baseline = baseline if baseline in loaded else None
    _check_cuda_graphs(loaded, settings)
    latencies: list[LatencyResult] = []
    ablations: list[AblationResult] = []
    op_profiles: list[OpProfile] = []
    fusion: list[FusionCensus] = []
    for backend in backends:
        for opt_level in settings.opt_levels:
            for name, model in loaded.items():
                say(f"{backend.name}: fusion census of {name} at opt level {opt_level}")
                fusion.append(backend.census(name, model, opt_level=opt_level))
            for batch in settings.batch_sizes:
                x = images(batch)
                lat, abl = _measure(loaded, settings, backend, opt_level, batch, x, baseline, say)
                latencies += lat
                ablations += abl
                for name, model in loaded.items():
                    say(f"{backend.name}: per-op profile of {name} at batch {batch}")
                    op_profiles.append(backend.op_profile(name, model, batch=batch, opt_level=opt_level, x=x))
    return ProfileRecord(
        **storage.header("profile"),
        gpu=runtime.gpu_info() if "cuda" in settings.providers else None,
        settings=settings,
        providers=statuses,
        baseline=baseline,
        models=[_model_ref(path, record) for path, record in models],
        latency=latencies,
        ablation=ablations,
        op_profiles=op_profiles,
        fusion=fusion,
        seconds=time.perf_counter() - started,
    )


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


def _load_named(backend: runtime.Backend, name: str, variant: str, data: bytes, opt_level: str, *, cuda_graph: bool):
    """backend.load, with a refusal that says which model and variant it is about."""
    try:
        return backend.load(data, opt_level=opt_level, cuda_graph=cuda_graph)
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


def _measure(loaded, settings, backend, opt_level, batch, x, baseline, say):
    """One interleaved measurement of every (model, variant, mode) at one backend × opt level × batch."""
    cuda_graph = settings.cuda_graph and backend.name == "cuda"
    targets: dict[tuple[str, str, str], runtime.Target] = {}
    for name, model in loaded.items():
        for variant, data in variants_of(name, model, ablation=settings.ablation).items():
            session = _load_named(backend, name, variant, data, opt_level, cuda_graph=cuda_graph)
            targets[(name, variant, "compute")] = backend.compute_target(session, x)
            end_to_end = backend.end_to_end_target(data, x, opt_level=opt_level) if variant == "as-trained" else None
            if end_to_end is not None:  # fed from host memory: the copies included
                targets[(name, variant, "end-to-end")] = end_to_end
    say(f"{backend.name}: timing {len(targets)} sessions at batch {batch}, opt level {opt_level}")
    keyed = {"|".join(key): target.run for key, target in targets.items()}
    rounds = latency.interleave(keyed, min_seconds=settings.min_time, min_runs=settings.min_runs)

    def key(name: str, variant: str = "as-trained", mode: str = "compute") -> str:
        return f"{name}|{variant}|{mode}"

    results = []
    for name, variant, mode in targets:
        k = key(name, variant, mode)
        vs = None
        if baseline and variant == "as-trained":
            vs = latency.ratio(rounds, k, key(baseline, "as-trained", mode))
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
            )
        )
    ablations = []
    if settings.ablation:
        p50 = {(r.model, r.variant): r.stats.p50_ms for r in results if r.mode == "compute"}
        for name in loaded:
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
                    activation_cost_ms=latency.difference_ms(rounds, key(name), key(name, "identity")),
                    penalty_vs_relu_ms=(
                        latency.difference_ms(rounds, key(name), key(name, "relu-swap")) if has_relu_swap else None
                    ),
                )
            )
    return results, ablations
