"""The record of ``swap``: another network's activation sites, its variants, and what each costs."""

from __future__ import annotations

from dataclasses import dataclass, field

from actprof.schema.environment import Environment
from actprof.schema.profiling import FusionCensus, LatencyResult, OpProfile, ProviderStatus
from actprof.settings.profile import ProfileSettings


@dataclass(frozen=True)
class SiteRecord:
    kind: str  # "Relu", "SiLU (x·Sigmoid(x))"…
    nodes: list[str]  # the node names (or op types where unnamed) the site spans
    input: str
    output: str
    elements: int | None  # of the site's output at the first batch size (None: shape not inferable)
    role: str = "activation"  # "gate" (scales another tensor) or "head" (squashes an output): graphs.sites


@dataclass(frozen=True)
class OutputDistance:
    """How far a variant's output moves from the original's on the same inputs: the cheap half of "is the
    approximation good enough" (the other half, retraining, is not measured)."""

    output: str  # the output compared (the model's first)
    samples: int  # inputs compared (draws of the inputs swap feeds)
    runtime: str  # where both ran, e.g. "cpu fp32"
    max_abs: float
    mean_abs: float
    relative: float  # ‖Δ‖ / ‖original‖ over every element
    argmax_agreement: float | None  # share of samples whose top class is unchanged; None: not class scores


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: list[int]  # at the first batch size
    dtype: str
    source: str  # "random normal, seed S", "token ids < N (rows of …)", "ones (a mask)", or the .npz given


@dataclass(frozen=True)
class SwapVariant:
    name: str  # "original" or the candidate
    file: str  # written under <out>/variants/
    sha256: str
    size_bytes: int
    sites_replaced: int
    decomposed: bool  # the candidate written as several ops (the model's opset lacks the single op)
    rss_added_bytes: dict[str, int] = field(default_factory=dict)  # "provider precision" -> bytes
    distance: OutputDistance | None = None  # None for the original


@dataclass(frozen=True)
class SwapRecord:
    schema_version: int
    kind: str  # "swap"
    created: str
    environment: Environment
    model: str  # the file given
    model_sha256: str
    opset: int
    inputs: list[InputSpec]
    sites: list[SiteRecord]
    replaced: list[int]  # indices into sites (--sites), or those whose role --roles names (activations by default)
    variants: list[SwapVariant]
    settings: ProfileSettings
    providers: list[ProviderStatus]
    latency: list[LatencyResult]  # model = variant name; vs_baseline against the original
    op_profiles: list[OpProfile]
    fusion: list[FusionCensus]
    seconds: float
    calibration: str = ""  # int8: what calibrated it
    note: str = "swapped variants are not retrained: their cost is measured, and how far their outputs move"
    batch_reshapes: list[str] = field(default_factory=list)  # Reshapes whose hard-coded batch became -1
