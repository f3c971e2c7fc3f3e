"""The same models under several builds of one runtime, side by side: ``actprof profile --runtime-versions``.

Each build runs in a worker process of its own (``workers``), in an environment of its own
(``environments``); the parent's rounds (``harness.interleave``) alternate between the builds, model by model
(relu under 1.20.1, relu under 1.21.1, elu under 1.20.1, …), so machine drift hits every build alike and a
round's ratio of two builds is a paired measurement. Two things are timed per activation model and batch: the
**network** (the whole model, as ``actprof profile`` times it) and the **kernel** (the activation op alone,
over a tensor the size of its first site's input at that batch): a kernel regression shows in full in the
second and diluted by everything else in the first. Each later build's change is taken against the first build
and, to bisect over several releases, against the build before it, both from the same rounds. Each build also
says what its optimizer fused (the census) and where its time went (per-op profile).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
import onnx

from actprof import activations
from actprof.graphs.sites import find_sites
from actprof.graphs.surgery import INPUT_NAME, OUTPUT_NAME
from actprof.measure import harness
from actprof.measure.cells import images
from actprof.measure.environments import environment_for
from actprof.measure.microbench import single_op_model
from actprof.measure.workers import RemoteTarget, Worker
from actprof.schema.profiling import FusionCensus, Interval, ModelRef, OpProfile
from actprof.schema.storage import from_dict, header
from actprof.schema.versions import (
    RuntimeBuild,
    VersionChange,
    VersionLatency,
    VersionsRecord,
    VersionsSettings,
)
from actprof.settings.versions import RuntimePin

Say = Callable[[str], None]
KINDS = ("network", "kernel")


def profile_versions(
    models: list[tuple[ModelRef, bytes]],
    pins: list[RuntimePin],
    settings: VersionsSettings,
    *,
    baseline: str | None,
    say: Say = lambda _m: None,
) -> VersionsRecord:
    started = time.perf_counter()
    names = [ref.name for ref, _ in models]
    baseline = baseline if baseline in names else None
    environments = [environment_for(pin, say=say) for pin in pins]
    with tempfile.TemporaryDirectory(prefix="actprof-versions-") as tmp, contextlib.ExitStack() as stack:
        files = _write_models(Path(tmp), models)
        workers = []
        for environment in environments:
            say(f"starting {environment.pin.label}")
            worker = Worker(environment, provider=settings.provider, threads=settings.threads)
            stack.callback(worker.close)
            workers.append(worker)
        builds = [_build(worker, pin) for worker, pin in zip(workers, pins, strict=True)]
        fusion = {w.label: _census(w, files, settings, say) for w in workers}
        latency: list[VersionLatency] = []
        changes: list[VersionChange] = []
        adjacent: list[VersionChange] = []
        op_profiles: dict[str, list[OpProfile]] = {w.label: [] for w in workers}
        for batch in settings.batch_sizes:
            lat, chg, adj = _time_batch(workers, files, names, batch, Path(tmp), settings, baseline, say)
            latency += lat
            changes += chg
            adjacent += adj
            for worker in workers:
                op_profiles[worker.label] += _op_profiles(worker, files, names, batch, Path(tmp), settings, say)
    return VersionsRecord(
        **header("versions"),
        settings=settings,
        runtimes=builds,
        baseline=baseline,
        models=[ref for ref, _ in models],
        latency=latency,
        changes=changes,
        fusion=fusion,
        op_profiles=op_profiles,
        seconds=time.perf_counter() - started,
        adjacent=adjacent,
    )


def _write_models(tmp: Path, models: list[tuple[ModelRef, bytes]]) -> dict[tuple[str, str], Path]:
    """Each model's network and its activation's single-op model, as files the workers load."""
    files = {}
    for ref, data in models:
        files[(ref.name, "network")] = tmp / f"{ref.name}.onnx"
        files[(ref.name, "network")].write_bytes(data)
        act = activations.get(ref.name) if ref.name in activations.names() else None  # not a rewrite (elu+pool-first)
        if act is not None:
            files[(ref.name, "kernel")] = tmp / f"{ref.name}.kernel.onnx"
            files[(ref.name, "kernel")].write_bytes(single_op_model(act))
    return files


def _build(worker: Worker, pin: RuntimePin) -> RuntimeBuild:
    b = worker.build
    return RuntimeBuild(
        label=pin.label,
        package=pin.package,
        version=b["version"],
        installed=pin.version is None,
        python=b["python"],
        numpy=b["numpy"],
        onnx=b["onnx"],
        threads=b["threads"],
    )


def _census(worker: Worker, files, settings: VersionsSettings, say: Say) -> list[FusionCensus]:
    say(f"{worker.label}: fusion census")
    found = []
    for (name, kind), path in files.items():
        if kind == "network":
            reply = worker.request("census", name=name, model=str(path), opt_level=settings.opt_level)
            found.append(from_dict(FusionCensus, reply))
    return found


def site_elements(model: bytes, batch: int) -> int:
    """Elements of the tensor the network's first activation site reads, at ``batch``."""
    proto = onnx.shape_inference.infer_shapes(onnx.load_from_string(model))
    sites = find_sites(proto)
    if not sites:
        return 0
    shapes = {v.name: v.type.tensor_type.shape for v in proto.graph.value_info}
    dims = shapes[sites[0].input].dim if sites[0].input in shapes else []
    sizes = [d.dim_value if d.HasField("dim_value") else 0 for d in dims]
    if len(sizes) < 2 or any(s <= 0 for s in sizes[1:]):
        return 0
    return batch * int(np.prod(sizes[1:]))


def _inputs(tmp: Path, files, names: list[str], batch: int) -> dict[tuple[str, str], tuple[Path, int]]:
    """Each (model, kind)'s input file and its element count: real MNIST images for the network, a
    standard-normal tensor of the first site's size for the kernel (both signs, so every branch runs)."""
    image_file = tmp / f"images-{batch}.npy"
    x = images(batch)
    np.save(image_file, x)
    found = {}
    rng = np.random.default_rng(0)
    for name in names:
        found[(name, "network")] = (image_file, int(x.size))
        elements = site_elements(files[(name, "network")].read_bytes(), batch)
        if elements and (name, "kernel") in files:
            kernel_file = tmp / f"{name}-kernel-{batch}.npy"
            np.save(kernel_file, rng.standard_normal(elements, dtype=np.float32))
            found[(name, "kernel")] = (kernel_file, elements)
    return found


def _time_batch(workers, files, names, batch, tmp, settings, baseline, say):
    inputs = _inputs(tmp, files, names, batch)
    targets: dict[str, RemoteTarget] = {}
    for name in names:  # model-major: the builds alternate within every round
        for kind in KINDS:
            if (name, kind) not in inputs:
                continue
            for worker in workers:
                key = _key(worker.label, name, kind)
                io = (INPUT_NAME, OUTPUT_NAME) if kind == "network" else ("x", "y")
                path, _ = inputs[(name, kind)]
                worker.request(
                    "load", key=key, model=str(files[(name, kind)]), opt_level=settings.opt_level, x=str(path), names=io
                )
                targets[key] = RemoteTarget(worker, key)
    say(f"timing {len(targets)} sessions in {len(workers)} builds at batch {batch}")
    groups = [list(keys) for keys in _groups(targets).values()]
    rounds = harness.interleave(
        targets, min_seconds=settings.min_time, min_runs=settings.min_runs, order=lambda r: _rotated(groups, r)
    )
    for worker in workers:
        worker.request("unload")
    latency = []
    for key in targets:
        label, name, kind = key.split("|")
        vs = None
        if baseline and _key(label, baseline, kind) in targets:
            vs = harness.ratio(rounds, key, _key(label, baseline, kind))
        stats = harness.stats_from_ns(rounds.samples[key], batch=batch)
        latency.append(VersionLatency(name, kind, label, batch, inputs[(name, kind)][1], stats, vs))
    labels = [w.label for w in workers]
    against_first = [(labels[0], label) for label in labels[1:]]
    build_to_build = list(pairwise(labels))
    return (
        latency,
        _changes(rounds, targets, against_first, batch, baseline),
        _changes(rounds, targets, build_to_build, batch, baseline),
    )


def _changes(rounds, targets, pairs: list[tuple[str, str]], batch, baseline) -> list[VersionChange]:
    """Each (base, build) pair's change, per model and kind, from the same paired rounds."""
    later = {label: base for base, label in pairs}
    changes = []
    for key in targets:
        label, name, kind = key.split("|")
        if label not in later:
            continue
        base = later[label]
        then = _key(base, name, kind)
        vs = None
        if baseline and _key(label, baseline, kind) in targets:
            vs = _ratio_change(rounds, (key, _key(label, baseline, kind)), (then, _key(base, baseline, kind)))
        changes.append(VersionChange(name, kind, batch, base, label, harness.ratio(rounds, key, then), vs))
    return changes


def _ratio_change(rounds: harness.Interleaved, now: tuple[str, str], then: tuple[str, str]) -> Interval:
    """Median over rounds of (model/baseline under the new build) / (model/baseline under the base build)."""
    r = {k: np.asarray(rounds.rounds[k]) for k in (*now, *then)}
    return harness.median_interval((r[now[0]] / r[now[1]]) / (r[then[0]] / r[then[1]]))


def _op_profiles(worker, files, names, batch, tmp, settings, say) -> list[OpProfile]:
    say(f"{worker.label}: per-op profiles at batch {batch}")
    found = []
    for name in names:
        reply = worker.request(
            "ops",
            name=name,
            model=str(files[(name, "network")]),
            batch=batch,
            opt_level=settings.opt_level,
            x=str(tmp / f"images-{batch}.npy"),
        )
        found.append(from_dict(OpProfile, reply))
    return found


def _groups(targets: dict[str, RemoteTarget]) -> dict[tuple[str, str], list[str]]:
    """The targets by (model, kind): one group holds the same model under every build."""
    found: dict[tuple[str, str], list[str]] = {}
    for key in targets:
        _, name, kind = key.split("|")
        found.setdefault((name, kind), []).append(key)
    return found


def _rotated(groups: list[list[str]], round_index: int) -> list[str]:
    """Round ``round_index``'s order: model by model, the builds starting one further each round. A block of a
    large model is a run or two, and the first build after another model's block starts with cold caches and
    sleeping threads; rotating spreads that over the builds instead of charging it to the first one."""
    return [key for group in groups for key in group[round_index % len(group) :] + group[: round_index % len(group)]]


def _key(label: str, name: str, kind: str) -> str:
    return f"{label}|{name}|{kind}"
