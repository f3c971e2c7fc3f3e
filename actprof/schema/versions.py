"""Records of ``actprof profile --runtime-versions``: the same models timed under several builds of a runtime."""

from __future__ import annotations

from dataclasses import dataclass, field

from actprof.schema.environment import Environment
from actprof.schema.profiling import FusionCensus, Interval, LatencyStats, ModelRef, OpProfile


@dataclass(frozen=True)
class RuntimeBuild:
    """One build as its worker reported it: what ran, and with which companions."""

    label: str  # "onnxruntime 1.20.1", or "onnxruntime (installed)"
    package: str
    version: str  # as the worker's installed package says (the installed build's real release)
    installed: bool  # the build installed beside actprof, not one of actprof's environments
    python: str
    numpy: str
    onnx: str
    threads: str  # e.g. "2 intra-op threads, a pool per session"


@dataclass(frozen=True)
class VersionLatency:
    model: str  # an activation's model name
    kind: str  # "network" (the whole model) | "kernel" (its activation alone, at its first site's size)
    runtime: str  # RuntimeBuild.label
    batch: int
    elements: int  # kernel: the tensor's elements; network: the input's
    stats: LatencyStats
    vs_baseline: Interval | None  # latency over the baseline model's, same build, kind and batch (per round)


@dataclass(frozen=True)
class VersionChange:
    """``runtime``'s latency over ``base``'s for one model, kind and batch: medians of per-round ratios (the
    builds alternate within each round, so a round's ratio cancels drift), with their 95% intervals. ``base``
    is the first build (``VersionsRecord.changes``) or the one before ``runtime`` (``adjacent``)."""

    model: str
    kind: str
    batch: int
    base: str
    runtime: str
    latency: Interval  # runtime / base
    vs_baseline: Interval | None  # the change of the model's ratio to the baseline model


@dataclass(frozen=True)
class VersionsSettings:
    provider: str
    batch_sizes: list[int]
    opt_level: str
    min_time: float
    min_runs: int
    threads: int


@dataclass(frozen=True)
class VersionsRecord:
    schema_version: int
    kind: str  # "versions"
    created: str
    environment: Environment  # the parent's; each build's own is in ``runtimes``
    settings: VersionsSettings
    runtimes: list[RuntimeBuild]
    baseline: str | None
    models: list[ModelRef]
    latency: list[VersionLatency]
    changes: list[VersionChange]
    fusion: dict[str, list[FusionCensus]]  # runtime label → census of each model
    op_profiles: dict[str, list[OpProfile]]  # runtime label → per-op time of each model and batch
    seconds: float
    # Build to build: each build against the one before it (``base`` is build i-1), from the same rounds as
    # ``changes``, to bisect a regression over several releases. Empty in records before schema 7.
    adjacent: list[VersionChange] = field(default_factory=list)
