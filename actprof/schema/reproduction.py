"""What ``actprof reproduce`` writes: a published experiment's numbers beside actprof's, over seeds."""

from __future__ import annotations

from dataclasses import dataclass, field

from actprof.schema.environment import Environment
from actprof.schema.reports import Estimate


@dataclass(frozen=True)
class ReproducedValue:
    """One published number (or one actprof measured where the source published none) and actprof's runs."""

    cell: str  # the network, as the source names it
    activation: str
    label: str  # the activation as the source names it
    metric: str  # a settings.literature.METRICS key
    published: float | None
    note: str  # where the published value was read, where it matters
    measured: Estimate  # over seeds: mean and the 95% interval of the mean
    one_run_low: float  # the 95% prediction interval of a single run (NaN with one seed)
    one_run_high: float
    reach: str  # inside | above | below (the published value against one run's interval) | — (none to compare)
    values: list[float] = field(default_factory=list)  # per seed, in seed order


@dataclass(frozen=True)
class ReproducedContrast:
    """A difference the source's claim rests on (one activation against another, or one depth against another),
    published against actprof's, paired by seed."""

    what: str
    metric: str
    published: float | None
    measured: Estimate  # of the per-seed differences
    p: float  # paired t-test (NaN with fewer than 2 seeds or no spread)
    call: str  # reproduces | same sign, another size | contradicts | within noise | no published value | too few seeds


@dataclass(frozen=True)
class ReproductionRecord:
    schema_version: int
    kind: str  # "reproduction"
    created: str
    environment: Environment
    experiment: str
    title: str
    source: str
    claim: str
    recipe: str  # the recipe in words
    networks: list[str]  # each network in words, with its parameter count
    seeds: list[int]
    epochs: int
    published_epochs: int
    dataset: str
    values: list[ReproducedValue]
    contrasts: list[ReproducedContrast]
    differences: list[str]
    wall_seconds: float  # this call (runs saved before are resumed, not retrained)
    training_seconds: float = 0.0  # every run's training steps, on its own clock (validation and export excluded)
    resumed: int = 0  # runs this call found saved
    failures: list[str] = field(default_factory=list)  # runs that diverged or failed (their seeds are missing)
