"""Honest latency numbers: warm-up until stable, timed runs, percentiles, interleaved rounds, CIs; and the runs
of a per-op profile.

Nothing here knows a runtime: a measurement target is any zero-argument callable (a backend's ``Target.run``).
Targets are compared by interleaving them round by round (A B C A B C …) so machine drift hits all of them
alike, and a ratio is the median of per-round ratios with a 95% confidence interval of that median.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from actprof.graphs.surgery import INPUT_NAME, OUTPUT_NAME
from actprof.schema.profiling import Interval, LatencyStats, OpProfile

if TYPE_CHECKING:
    from actprof.runtimes.base import Backend

Run = Callable[[], object]
MIN_ROUNDS = 20


def stats_from_ns(samples_ns: Sequence[int] | np.ndarray, *, batch: int) -> LatencyStats:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50 = float(np.percentile(ms, 50))
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if len(ms) > 1 else 0.0
    return LatencyStats(
        runs=len(ms),
        min_ms=float(ms.min()),
        p50_ms=p50,
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_ms=mean,
        std_ms=std,
        cv=std / mean if mean > 0 else math.nan,
        throughput=batch / (p50 / 1e3) if p50 > 0 else math.nan,
    )


def warm_up(
    run: Run,
    *,
    min_runs: int = 10,
    min_seconds: float = 0.02,
    window_seconds: float = 0.01,
    max_seconds: float = 2.0,
) -> float:
    """Run ``min_runs`` times or for ``min_seconds``, whichever comes first (at least twice), then
    until the medians of two consecutive windows (3 to ``min_runs`` runs, about ``window_seconds``)
    agree within 5% (or ``max_seconds`` pass).

    Returns the last window's median latency in nanoseconds: the warm, stable estimate. The stability
    test, not the length, is what makes it warm: an ORT session is steady after its first runs, and
    with 0.2 s and 0.05 s windows the warm-ups were a fifth of ``actprof run``'s profile stage.
    """
    started = time.perf_counter()
    runs = 0
    while runs < 2 or (runs < min_runs and time.perf_counter() - started < min_seconds):
        run()
        runs += 1
    per_run = (time.perf_counter() - started) / runs
    window = max(3, min(min_runs, int(window_seconds / max(per_run, 1e-9))))
    previous = _window_median(run, runs=window)
    while time.perf_counter() - started < max_seconds:
        current = _window_median(run, runs=window)
        stable = abs(current - previous) <= 0.05 * previous
        previous = current
        if stable:
            break
    return previous


def _window_median(run: Run, *, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        run()
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times))


def run_for(
    run: Run,
    *,
    min_runs: int,
    min_seconds: float,
    max_runs: int | None = None,
    warm_up: int = 0,
    after_each: Run = lambda: None,
) -> int:
    """``warm_up`` untimed calls, then calls until both ``min_runs`` and ``min_seconds`` are reached, or
    ``max_runs`` are done (never fewer than ``min_runs``), each followed by ``after_each`` (e.g. reading a
    profiler's counters); returns how many followed the warm-up."""
    for _ in range(warm_up):
        run()
    cap = math.inf if max_runs is None else max(min_runs, max_runs)
    started, runs = time.perf_counter(), 0
    while runs < min_runs or (runs < cap and time.perf_counter() - started < min_seconds):
        run()
        after_each()
        runs += 1
    return runs


def time_runs(run: Run, count: int) -> list[int]:
    """``count`` timed runs, each with ``perf_counter_ns`` around the call alone."""
    clock = time.perf_counter_ns
    samples = [0] * count
    for i in range(count):
        t0 = clock()
        run()
        samples[i] = clock() - t0
    return samples


@runtime_checkable
class Timed(Protocol):
    """A target timed somewhere else (a runtime-version worker process): it warms itself up and times a
    block of runs with the same loop as a local target, and hands back the samples."""

    def warm(self, runs: int | None) -> float: ...

    def time(self, count: int) -> list[int]: ...


@dataclass
class Interleaved:
    """Raw per-run samples and per-round medians of targets measured in interleaved rounds."""

    samples: dict[str, list[int]] = field(default_factory=dict)
    rounds: dict[str, list[float]] = field(default_factory=dict)  # per-round median (ns)


def interleave(
    targets: dict[str, Run | Timed],
    *,
    min_seconds: float = 0.5,
    min_runs: int = 30,
    min_rounds: int = MIN_ROUNDS,
    max_seconds: float = 120.0,
    on_round: Callable[[int], None] | None = None,
    warm_up_runs: int | None = None,
    order: Callable[[int], list[str]] | None = None,
) -> Interleaved:
    """Time every target in rounds until each has ``min_seconds`` of timed runs and ``min_runs`` runs.

    Each round runs every target for a block of about ``min_seconds / min_rounds`` of its own latency
    (``block_size``, from what it has measured so far), so a fast and a slow target each contribute a
    similar number of rounds, and all of them are done after ``min_rounds`` or very few more. Each target is
    warmed up until stable (``warm_up``), or with ``warm_up_runs`` runs exactly (a training step: its first
    runs pay the one-time setup, after which it is steady, and a stability test would cost ten more).
    A ``Timed`` target does both where it runs; the rounds are the same. ``order`` gives the targets' order in
    a round from its index (default: as given), e.g. rotated so that no target always follows the same one.
    """
    estimate = {name: max(warm_estimate(run, warm_up_runs), 1.0) for name, run in targets.items()}
    result = Interleaved({name: [] for name in targets}, {name: [] for name in targets})
    started = time.perf_counter()
    round_index = 0
    while True:
        rounds_left = min_rounds - round_index
        for name in order(round_index) if order else targets:
            run = targets[name]
            block = block_size(
                result.samples[name],
                estimate[name],
                min_seconds=min_seconds,
                min_runs=min_runs,
                rounds_left=rounds_left,
            )
            samples = run.time(block) if isinstance(run, Timed) else time_runs(run, block)
            result.samples[name].extend(samples)
            result.rounds[name].append(float(np.median(samples)))
        round_index += 1
        if on_round:
            on_round(round_index)
        done = round_index >= min_rounds and all(
            len(s) >= min_runs and sum(s) >= min_seconds * 1e9 for s in result.samples.values()
        )
        if done or time.perf_counter() - started > max_seconds:
            return result


def warm_estimate(run: Run | Timed, runs: int | None) -> float:
    """The warm estimate of a target's latency (ns): ``warm_up``'s, or the last of ``runs`` untimed runs."""
    if isinstance(run, Timed):
        return run.warm(runs)
    if runs is None:
        return warm_up(run)
    samples = time_runs(run, max(1, runs))
    return float(samples[-1])


def block_size(
    done_ns: Sequence[int], estimate_ns: float, *, min_seconds: float, min_runs: int, rounds_left: int
) -> int:
    """Runs for a target's next round: what it still lacks of ``min_seconds`` and ``min_runs``, spread over
    ``rounds_left`` rounds at its mean latency so far (the warm-up's estimate before its first round).

    Sized once from the warm-up, blocks came out short: a run in a round, after the other targets, is
    slower than in the warm-up's tight loop (ORT at batch 1: 74 against 54 µs), and the rounds that make
    up a shortfall are paid by every target. ``actprof run``'s targets got 1.35x their time at batch 1 and
    took 36 rounds instead of 20 at batch 64.
    """
    latency = sum(done_ns) / len(done_ns) if done_ns else estimate_ns
    seconds_left = max(0.0, min_seconds * 1e9 - sum(done_ns))
    runs_left = max(0, min_runs - len(done_ns))
    per_round = max(seconds_left / max(latency, 1.0), runs_left) / max(1, rounds_left)
    return max(1, min(10_000, math.ceil(per_round)))


def median_interval(values: Sequence[float]) -> Interval:
    """Median of ``values`` with its distribution-free 95% confidence interval from order statistics.

    The interval is [x_(j), x_(n-j+1)] with j from Binomial(n, 1/2) (scipy's ``quantile_test``): exact
    coverage of at least 95% for any continuous distribution, and — unlike a percentile bootstrap — it
    always contains the sample median it is reported with. With fewer than 6 values no pair of order
    statistics reaches 95%: the interval is then the whole range, and says so by being wide.
    """
    data = np.asarray(values, dtype=np.float64)
    data = np.sort(data[np.isfinite(data)])
    n = len(data)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    median = float(np.median(data))
    if n < 2:
        return Interval(median, median, median, n)
    low, high = median_ci_ranks(n)
    return Interval(median, float(data[max(low, 0)]), float(data[min(high, n - 1)]), n)


@functools.lru_cache(maxsize=256)
def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based ranks of the order statistics bounding the median's distribution-free interval, as scipy's
    ``quantile_test(p=0.5).confidence_interval`` picks them (tested against it): with B ~ Binomial(n, 1/2)
    and tail = (1 − confidence)/2, low is the least k with P(B ≤ k) ≥ tail, less one; high is the least k
    with P(B > k) ≤ tail. Out of range (n < 6 at 95%) means unbounded on that side. scipy.special, not
    scipy.stats: importing the latter costs every command ~0.6 s more."""
    from scipy import special

    tail = (1 - confidence) / 2
    k = np.arange(n + 1)
    low = int(np.argmax(special.bdtr(k, n, 0.5) >= tail)) - 1
    high = int(np.argmax(special.bdtrc(k, n, 0.5) <= tail))
    return low, high


def ratio(rounds: Interleaved, numerator: str, denominator: str) -> Interval:
    """Median of per-round latency ratios numerator/denominator, with its 95% CI."""
    a = np.asarray(rounds.rounds[numerator])
    b = np.asarray(rounds.rounds[denominator])
    return median_interval(a / b)


def difference_ms(rounds: Interleaved, minuend: str, subtrahend: str) -> Interval:
    """Median of per-round latency differences in milliseconds, with its 95% CI."""
    a = np.asarray(rounds.rounds[minuend])
    b = np.asarray(rounds.rounds[subtrahend])
    return median_interval((a - b) / 1e6)


PROFILE_WARM_UP = 5  # untimed runs before a per-op profile's timed ones
# A per-op profile stops at 0.1 s or this many runs, whichever comes first. At batch 1 the window held
# 420-730 runs of the fast models, and ORT wrote 4-7 MB of JSON for them; 200 runs gave the same shares
# within their repeat-to-repeat spread (5 repeats, relu/elu/gelu/mish/softplus) in a quarter of the time.
PROFILE_MAX_RUNS = 200
PROFILE_MIN_RUNS = 20
PROFILE_SECONDS = 0.1


def op_profile(
    backend: Backend,
    name: str,
    model: bytes,
    *,
    batch: int,
    opt_level: str,
    x: np.ndarray,
    precision: str = "fp32",
    names: tuple[str, str] = (INPUT_NAME, OUTPUT_NAME),
    activation_ops: frozenset[str] | None = None,
) -> OpProfile:
    """Per-op time of ``model`` on ``backend`` from a profiling load of its own (``Backend.op_profiler``):
    the warm-up, then 0.1 s or PROFILE_MAX_RUNS runs, whichever comes first (never fewer than
    PROFILE_MIN_RUNS)."""
    load = dict(batch=batch, opt_level=opt_level, x=x, precision=precision, names=names, activation_ops=activation_ops)
    with backend.op_profiler(name, model, **load) as profiler:
        runs = run_for(
            profiler.run,
            min_runs=PROFILE_MIN_RUNS,
            min_seconds=PROFILE_SECONDS,
            max_runs=PROFILE_MAX_RUNS,
            warm_up=PROFILE_WARM_UP,
            after_each=profiler.after_each,
        )
        return profiler.finish(PROFILE_WARM_UP, runs)
