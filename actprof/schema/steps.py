"""Records of the training step's cost on each stack users train with (``actprof step-time``, ``steps.json``).

A run's curve says how many steps an activation needs to reach an accuracy (the same function on any stack);
these say what a step costs on each stack, measured side by side in interleaved rounds, so that the seconds
to an accuracy can be priced on the stack a user trains with.
"""

from __future__ import annotations

from dataclasses import dataclass

from actprof.schema.environment import Environment
from actprof.schema.profiling import Interval, LatencyStats


@dataclass(frozen=True)
class StackIdentity:
    """What ran a training step: the stack, where, at which precision, with what. For actprof's fast trainer,
    which of its speed-ups ran (its kernels, their vector width and threads, pool-first, the lean form)."""

    stack: str  # eager | compile | actprof
    device: str  # cpu | cuda
    precision: str  # fp32 | bf16 (autocast)
    threads: int  # torch's intra-op threads
    torch: str
    optimizer: str = ""
    kernels: bool = False
    lanes: int = 0
    openmp: bool = False
    pool_first: bool = False
    lean: bool = False
    channels_last: bool = False

    def machine(self) -> str:
        """What the trainer ran on and with, in words — everything but what depends on the activation itself
        (pool-first runs only for monotonic ones, by design): two runs that differ here have seconds that are
        not comparable."""
        kernels = (
            f"kernels ({self.lanes} lanes{', OpenMP' if self.openmp else ', one thread'})"
            if self.kernels
            else "no kernels"
        )
        return f"{self.device} {self.precision}, {self.threads} threads, torch {self.torch}, {kernels}"

    def speedups(self) -> str:
        """The fast trainer's speed-ups in words: "kernels (8 lanes, OpenMP), pool-first, lean"; "" for none."""
        parts = []
        if self.kernels:
            parts.append(f"kernels ({self.lanes} lanes{', OpenMP' if self.openmp else ', one thread'})")
        parts += [name for name, on in (("pool-first", self.pool_first), ("lean", self.lean)) if on]
        return ", ".join(parts)


@dataclass(frozen=True)
class StepCost:
    """One activation's training step on one stack: its time per step (ms) and its ratio to the baseline's
    step on the same stack (median of per-round ratios, with that median's 95% CI)."""

    activation: str
    stack: str
    batch: int
    stats: LatencyStats  # per step; throughput is images per second
    vs_baseline: Interval | None
    compile_seconds: float | None = None  # compile only: the first step's time beyond a steady one


@dataclass(frozen=True)
class StepCostRecord:
    schema_version: int
    kind: str  # "steps"
    created: str
    environment: Environment
    architecture: str
    batch: int
    baseline: str | None
    stacks: list[StackIdentity]  # one per stack timed (the actprof one: as for the baseline's network)
    costs: list[StepCost]
    seconds: float
