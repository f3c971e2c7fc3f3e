"""Records of the report: per activation its summary and evidence over seeds, and the verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field

from actprof.schema.environment import Environment
from actprof.schema.profiling import Interval
from actprof.schema.steps import StackIdentity
from actprof.schema.training import TimeToAccuracy
from actprof.settings.networks import describe


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its two-sided 95% t interval (NaN bounds for a single seed)."""

    mean: float
    low: float
    high: float
    n: int
    std: float


@dataclass(frozen=True)
class PairedComparison:
    """activation − baseline, paired by seed: mean difference, 95% CI, paired t-test, Cohen's d_z."""

    what: str
    n: int  # seeds where both sides have a value
    mean_difference: float
    low: float
    high: float
    p_value: float
    effect_size: float
    significant: bool
    higher_is_better: bool
    reached: str  # e.g. "3/3 vs 2/3": seeds that reached the target, activation vs baseline
    # Time to a target is read off validation points: the median bracket width around the crossings
    # compared. A difference no larger than it cannot be told apart (resolved False, never significant).
    resolution: float | None = None
    resolved: bool = True


@dataclass(frozen=True)
class LrCell:
    """One activation at one learning rate, over its seeds (validation split only)."""

    activation: str
    lr: float
    val_accuracy: Estimate  # final validation accuracy
    seconds_to_target: Estimate  # over the seeds that reached the report's target (n says how many)
    seeds: int
    chosen: bool  # this activation's best rate


@dataclass(frozen=True)
class SharedLrComparison:
    """Activation against the baseline with both at the one shared learning rate, paired by seed."""

    activation: str
    seconds_to_target: Estimate
    vs_baseline: PairedComparison | None  # seconds to the target; None with fewer than two paired seeds


@dataclass(frozen=True)
class LrStudy:
    """A learning-rate sweep read for the report: every (activation, rate) cell, each activation's chosen
    rate, and the comparison at one rate shared by all."""

    lrs: list[float]
    rule: str  # how each activation's rate was chosen
    cells: list[LrCell]
    shared_lr: float
    shared_rule: str
    at_shared: list[SharedLrComparison]
    shared_target: float | None = None  # the baseline's highest whole percent in every seed at the shared rate


@dataclass(frozen=True)
class LatencyBrief:
    provider: str
    batch: int
    mode: str
    p50_ms: float
    p99_ms: float
    vs_baseline: Interval | None
    precision: str = "fp32"
    vs_baseline_ms: Interval | None = None


@dataclass(frozen=True)
class StepBrief:
    """An activation's training step on one stack: ms per step, and its ratio to the baseline's step there."""

    stack: str
    ms: float
    vs_baseline: Interval | None
    compile_seconds: float | None = None


@dataclass(frozen=True)
class ActivationSummary:
    name: str
    init: str
    precision: str
    dataset: str
    epochs: int
    test_accuracy: float
    onnx_test_accuracy: float
    images_per_second: float
    time_to_accuracy: list[TimeToAccuracy]
    mean_activation: list[float]  # per activation layer
    dead_fraction: list[float]
    latency: list[LatencyBrief]
    seeds: list[int] = field(default_factory=list)
    seconds_to_target: list[float | None] = field(default_factory=list)  # per seed; None: not reached
    vs_baseline: list[PairedComparison] = field(default_factory=list)
    # "test accuracy", "test loss", "seconds to 97%", "steps to 97%"…: mean, std and 95% CI over the seeds
    # (for time to a target, over the seeds that reached it: n says how many did)
    over_seeds: dict[str, Estimate] = field(default_factory=dict)
    rewrite: str | None = None  # an exact rewrite of another activation's model: same training, own inference
    lr: float | None = None  # the learning rate of the runs above (the chosen one in a sweep)
    recipe: str = ""  # optimizer, batch and regularisation: "Adam, batch 250, dropout 0.25"…
    contended_runs: int = 0  # runs that shared their node's cores with other trainings (Ray, packed tasks)
    steps_to_target: list[float | None] = field(default_factory=list)  # per seed; None: not reached
    steps: list[StepBrief] = field(default_factory=list)  # the training step on each stack timed
    # The fast trainer's speed-ups its runs had, where they differ from the baseline's (their seconds on the
    # runs' own clock are then not comparable; steps and the seconds priced on a stack are)
    trainer_differs: str = ""
    test_images: int = 0  # the test set test_accuracy was scored on (0: a report from before it was recorded)


@dataclass(frozen=True)
class Verdict:
    activation: str
    baseline: str
    provider: str
    target_accuracy: float
    train_seconds: float | None  # to the target; None: not reached in this run
    baseline_train_seconds: float | None
    train_seconds_saved: float | None  # baseline − activation: positive when the activation converges faster
    ms_lost_per_image_batch1: Interval | None  # activation − baseline p50 at batch 1
    largest_batch: int | None
    ms_lost_per_batch: Interval | None  # at the largest batch
    break_even_batch1: float | None  # inferences at batch 1 after which the baseline is cheaper overall
    break_even_largest: float | None  # images served at the largest batch, likewise
    latency_within_noise: bool
    summary: str
    training: PairedComparison | None = None  # seconds to the target, paired by seed (several seeds)
    break_even_batch1_range: list[float] = field(default_factory=list)  # [low, high] from both intervals
    # the wider of the two validation brackets the crossings of the target were read in (one seed: a saving
    # no larger than this is not a difference)
    train_resolution_s: float | None = None
    precision: str = "fp32"  # the deployment target is (provider, precision)
    call: str = ""  # one word: wins | trade-off | tie | loses | unsettled | incomplete (see analysis.calls.call)
    # The stack the seconds are priced on: steps to the target × that stack's step time (measured side by
    # side); "" where no step time was measured and the runs' own clock stands (older results)
    train_stack: str = ""
    train_steps: float | None = None  # to the target (mean over the seeds that reached it)
    baseline_train_steps: float | None = None
    unsettled: str = ""  # why the training side cannot be told from noise, where it cannot
    seeds: int = 0  # the runs on each side, paired by seed
    seeds_reached: int = 0  # of them, those that reached the target
    baseline_seeds_reached: int = 0


@dataclass(frozen=True)
class ReportRecord:
    schema_version: int
    kind: str  # "report"
    created: str
    baseline: str
    target_accuracy: float | None
    activations: list[ActivationSummary]
    verdicts: list[Verdict]
    profile_created: str | None
    environment: Environment
    target_rule: str = ""  # how the target accuracy was chosen, in words
    architecture: str = "seed"  # the --model spec every activation was trained in
    network: str = ""  # that network in words, with its parameter count ("": describe the spec)
    lr_study: LrStudy | None = None  # a learning-rate sweep (--lr with several rates)
    train_stack: str = ""  # the stack the verdicts' seconds are priced on ("": the runs' own clock)
    stacks: list[StackIdentity] = field(default_factory=list)  # what ran each stack's steps

    @property
    def network_words(self) -> str:
        """The network in words, as every rendering names it."""
        return self.network or describe(self.architecture)
