from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from actprof.measure import harness
from actprof.measure.harness import Interleaved, difference_ms, interleave, median_interval, ratio, stats_from_ns

PROPERTY = settings(max_examples=100, deadline=None)

# --- stats_from_ns -----------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 64])
def test_stats_from_ns_match_numpy(batch):
    ns = np.array([3_100_000, 1_000_000, 2_000_000, 9_500_000, 4_000_000, 2_500_000, 1_200_000, 7_000_000])
    ms = ns / 1e6
    stats = stats_from_ns(ns.tolist(), batch=batch)
    assert stats.runs == len(ns)
    assert stats.min_ms == pytest.approx(ms.min())
    assert stats.p50_ms == pytest.approx(np.percentile(ms, 50))
    assert stats.p90_ms == pytest.approx(np.percentile(ms, 90))
    assert stats.p99_ms == pytest.approx(np.percentile(ms, 99))
    assert stats.mean_ms == pytest.approx(ms.mean())
    assert stats.std_ms == pytest.approx(ms.std(ddof=1))
    assert stats.cv == pytest.approx(ms.std(ddof=1) / ms.mean())
    assert stats.throughput == pytest.approx(batch / (np.median(ms) / 1e3))


def test_stats_from_ns_accepts_an_array_and_a_single_sample():
    stats = stats_from_ns(np.array([2_000_000]), batch=8)
    assert stats.runs == 1
    assert stats.min_ms == stats.p50_ms == stats.p99_ms == stats.mean_ms == 2.0
    assert stats.std_ms == 0.0
    assert stats.cv == 0.0
    assert stats.throughput == pytest.approx(8 / 0.002)


def test_stats_from_ns_of_identical_samples_have_no_spread():
    stats = stats_from_ns([500_000] * 10, batch=2)
    assert stats.p50_ms == stats.p90_ms == stats.p99_ms == 0.5
    assert stats.std_ms == 0.0
    assert stats.cv == 0.0
    assert stats.throughput == pytest.approx(4000.0)


# --- median_interval ---------------------------------------------------------------------------


def noisy(n: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(mean=0.0, sigma=0.3, size=n)


def test_median_interval_contains_the_median():
    data = noisy(101)
    interval = median_interval(data)
    assert interval.value == pytest.approx(np.median(data))
    assert interval.low < interval.value < interval.high
    assert interval.n == 101


def test_median_interval_narrows_with_more_data():
    small = median_interval(noisy(20))
    large = median_interval(noisy(2000))
    assert large.high - large.low < (small.high - small.low) / 3


def test_median_interval_is_the_order_statistic_interval():
    """Written out by hand: [x_(j), x_(n-j+1)], j the 2.5% quantile of Binomial(n, 1/2)."""
    from scipy import stats

    data = noisy(200, seed=11)
    ordered = np.sort(data)
    j = int(stats.binom.ppf(0.025, len(data), 0.5))
    interval = median_interval(data)
    assert (interval.low, interval.high) == (ordered[j - 1], ordered[len(data) - j])


@given(st.lists(st.floats(min_value=1e-6, max_value=1e3, allow_nan=False), min_size=1, max_size=400))
@PROPERTY
def test_median_interval_is_scipys_quantile_test_interval(values):
    from scipy import stats

    interval = median_interval(values)
    assert interval.value == np.median(values)
    if len(values) >= 2:
        ci = stats.quantile_test(values, q=np.median(values), p=0.5).confidence_interval(0.95)
        expected = (
            ci.low if math.isfinite(ci.low) else min(values),
            ci.high if math.isfinite(ci.high) else max(values),
        )
        assert (interval.low, interval.high) == expected


def test_median_ranks_are_scipys_for_every_sample_size_a_profile_sees():
    from scipy import stats

    for n in [*range(1, 401), 997, 2_048, 10_000, 100_001]:
        binomial = stats.binom(n, 0.5)
        assert harness.median_ci_ranks(n) == (int(binomial.ppf(0.025)) - 1, int(binomial.isf(0.025))), n


def test_median_interval_covers_the_true_median_95_percent_of_the_time():
    rng = np.random.default_rng(5)
    true_median = np.log(2)  # of the standard exponential: skewed, like latencies
    hits = sum(
        interval.low <= true_median <= interval.high
        for interval in (median_interval(rng.standard_exponential(30)) for _ in range(2000))
    )
    assert hits / 2000 >= 0.94  # 0.95 nominal; order statistics are conservative (measured 0.96)


def test_median_interval_drops_non_finite_values():
    interval = median_interval([1.0, 2.0, math.inf, math.nan, 3.0, -math.inf])
    assert interval.n == 3
    assert interval.value == 2.0
    assert 1.0 <= interval.low <= interval.high <= 3.0


@pytest.mark.parametrize("values", [[], [math.nan], [math.inf, -math.inf]])
def test_median_interval_of_nothing_finite_is_nan(values):
    interval = median_interval(values)
    assert interval.n == 0
    assert math.isnan(interval.value) and math.isnan(interval.low) and math.isnan(interval.high)


# The upper bound keeps pairs of values summable: numpy's median averages the two middle values and
# overflows to inf near the largest float, which no latency (in ns or ms) ever approaches.
POSITIVE = st.floats(min_value=0.0, max_value=1e300, exclude_min=True, allow_nan=False, allow_infinity=False)


@PROPERTY
@given(values=st.lists(POSITIVE, min_size=1, max_size=60))
def test_median_interval_brackets_its_value(values):
    interval = median_interval(values)
    assert interval.n == len(values)
    assert interval.value == np.median(values)
    assert interval.low <= interval.value <= interval.high
    assert min(values) <= interval.low and interval.high <= max(values)


@PROPERTY
@given(samples=st.lists(st.integers(1, 10**13), min_size=1, max_size=200), batch=st.integers(1, 65536))
def test_stats_percentiles_are_ordered(samples, batch):
    stats = stats_from_ns(samples, batch=batch)
    assert stats.runs == len(samples)
    assert stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= max(samples) / 1e6
    assert stats.std_ms >= 0 and stats.cv >= 0
    assert stats.throughput > 0


# --- ratio and difference on hand-built rounds -------------------------------------------------


def hand_built() -> Interleaved:
    return Interleaved(
        samples={"fast": [1_000_000] * 3, "slow": [3_000_000] * 3},
        rounds={"fast": [1e6, 2e6, 1e6, 1e6], "slow": [3e6, 5e6, 4e6, 2e6]},
    )


def test_ratio_is_the_median_of_per_round_ratios():
    interval = ratio(hand_built(), "slow", "fast")
    per_round = [3.0, 2.5, 4.0, 2.0]
    assert interval.value == pytest.approx(np.median(per_round))
    assert interval.n == 4
    assert min(per_round) <= interval.low <= interval.value <= interval.high <= max(per_round)


def test_ratio_of_a_target_to_itself_is_exactly_one():
    interval = ratio(hand_built(), "slow", "slow")
    assert (interval.value, interval.low, interval.high, interval.n) == (1.0, 1.0, 1.0, 4)


def test_difference_ms_is_the_median_of_per_round_differences():
    interval = difference_ms(hand_built(), "slow", "fast")
    per_round_ms = [2.0, 3.0, 3.0, 1.0]
    assert interval.value == pytest.approx(np.median(per_round_ms))
    assert interval.n == 4
    assert 1.0 <= interval.low <= interval.value <= interval.high <= 3.0
    reverse = difference_ms(hand_built(), "fast", "slow")
    assert reverse.value == pytest.approx(-interval.value)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_ratio_drops_rounds_with_a_zero_denominator():
    rounds = Interleaved(rounds={"a": [2.0, 4.0, 1.0], "b": [1.0, 2.0, 0.0]})
    interval = ratio(rounds, "a", "b")
    assert interval.n == 2
    assert interval.value == 2.0


# --- real callables ----------------------------------------------------------------------------


def sleeper(seconds: float, counter: list[int]):
    def run() -> None:
        counter.append(1)
        time.sleep(seconds)

    return run


class FakeClock:
    """A clock the targets advance by exactly their cost: the harness's logic, timed without a machine."""

    def __init__(self) -> None:
        self.now_ns = 0

    def target(self, seconds: float):
        def run() -> None:
            self.now_ns += round(seconds * 1e9)

        return run

    def perf_counter(self) -> float:
        return self.now_ns / 1e9

    def perf_counter_ns(self) -> int:
        return self.now_ns


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(harness, "time", fake)
    return fake


def test_warm_up_returns_a_warm_latency_estimate_in_ns(clock):
    assert harness.warm_up(clock.target(0.002), min_runs=5, min_seconds=0.05, max_seconds=0.5) == 2e6
    calls: list[int] = []
    harness.warm_up(sleeper(0.002, calls), min_runs=5, min_seconds=0.05, max_seconds=0.5)
    assert len(calls) >= 5  # the initial runs (min_runs here comes first) and two windows of >= 3


def test_warm_up_stops_at_max_seconds(clock):
    costs = iter(0.02 * 1.3**k for k in range(10**6))  # every run slower than the one before: never stable
    estimate = harness.warm_up(lambda: clock.target(next(costs))(), min_runs=3, min_seconds=0.01, max_seconds=0.2)
    assert estimate >= 20e6  # it returned, with the last window's median, once 0.2 s had passed


def test_interleave_gives_every_target_the_same_rounds_and_enough_runs():
    fast_calls: list[int] = []
    slow_calls: list[int] = []
    seen_rounds: list[int] = []
    result = interleave(
        {"fast": sleeper(0.001, fast_calls), "slow": sleeper(0.003, slow_calls)},
        min_seconds=0.1,
        min_runs=15,
        min_rounds=6,
        on_round=seen_rounds.append,
    )
    assert set(result.samples) == set(result.rounds) == {"fast", "slow"}
    assert len(result.rounds["fast"]) == len(result.rounds["slow"]) >= 6
    assert seen_rounds == list(range(1, len(result.rounds["fast"]) + 1))
    for name in ("fast", "slow"):
        assert len(result.samples[name]) >= 15
        assert sum(result.samples[name]) >= 0.1e9
        assert all(s > 0 for s in result.samples[name])
    assert min(result.samples["slow"]) >= 3e6
    # Timed runs are a subset of all calls (warm-up runs are not recorded).
    assert len(fast_calls) > len(result.samples["fast"])
    assert len(slow_calls) > len(result.samples["slow"])


@PROPERTY
@given(
    latency_ns=st.integers(1_000, 100_000_000),
    min_seconds=st.floats(0.01, 2.0),
    min_runs=st.integers(1, 200),
    min_rounds=st.integers(1, 40),
)
def test_blocks_sized_from_a_true_estimate_meet_both_quotas_in_min_rounds(
    latency_ns, min_seconds, min_runs, min_rounds
):
    assume(min_seconds * 1e9 / latency_ns / min_rounds <= 10_000)  # else the cap on a block holds it back
    done: list[int] = []
    for round_index in range(min_rounds):
        block = harness.block_size(
            done, latency_ns, min_seconds=min_seconds, min_runs=min_runs, rounds_left=min_rounds - round_index
        )
        assert 1 <= block <= 10_000
        done += [latency_ns] * block
    assert len(done) >= min_runs
    assert sum(done) >= min_seconds * 1e9
    assert sum(done) < min_seconds * 1e9 + 2 * min_rounds * latency_ns or len(done) <= min_runs + min_rounds


def test_a_block_makes_up_a_shortfall_at_the_latency_measured_so_far():
    # Runs were 2 ms, not the 1 ms the warm-up said: 60 ms done of 100, 4 rounds left -> 5 runs each.
    assert harness.block_size([2_000_000] * 30, 1e6, min_seconds=0.1, min_runs=30, rounds_left=4) == 5
    # Past min_rounds, the whole shortfall in one round; a target already done runs once, for the pairing.
    assert harness.block_size([2_000_000] * 30, 1e6, min_seconds=0.1, min_runs=30, rounds_left=-3) == 20
    assert harness.block_size([2_000_000] * 60, 1e6, min_seconds=0.1, min_runs=30, rounds_left=2) == 1


def _steady_1ms_and_3ms(clock):
    targets = {"fast": clock.target(0.001), "slow": clock.target(0.003)}
    return interleave(targets, min_seconds=0.1, min_runs=10, min_rounds=8)


def test_interleave_of_steady_targets_is_done_in_min_rounds(clock):
    """Each round's block is sized from the latency measured so far, so steady targets reach their quotas
    in the rounds asked for, each with about its quota and not a multiple of it."""
    result = _steady_1ms_and_3ms(clock)
    assert len(result.rounds["fast"]) == len(result.rounds["slow"]) == 8
    for samples in result.samples.values():
        assert 0.1e9 <= sum(samples) < 0.12e9


def test_interleave_ratio_and_difference_of_a_3x_workload(clock):
    result = _steady_1ms_and_3ms(clock)
    interval = ratio(result, "slow", "fast")
    assert interval.value == interval.low == interval.high == pytest.approx(3.0)
    assert interval.n == len(result.rounds["fast"])
    assert difference_ms(result, "slow", "fast").value == pytest.approx(2.0)


def test_interleave_stops_at_max_seconds(clock):
    targets = {"a": clock.target(1e-6), "b": clock.target(1e-6)}
    result = interleave(targets, min_seconds=0.01, min_runs=10**12, max_seconds=0.2)
    assert len(result.rounds["a"]) == len(result.rounds["b"]) >= 1
    assert len(result.samples["a"]) < 10**12
    assert clock.now_ns < 5e9  # the warm-ups (2 s caps each), then the 0.2 s cap and at most one round past it


def test_run_for_stops_at_max_runs_but_never_before_min_runs():
    calls: list[int] = []
    assert harness.run_for(lambda: calls.append(1), min_runs=3, min_seconds=60.0, max_runs=7, warm_up=2) == 7
    assert len(calls) == 9  # the warm-up's 2 as well
    assert harness.run_for(lambda: None, min_runs=10, min_seconds=60.0, max_runs=4) == 10
    assert harness.run_for(lambda: None, min_runs=5, min_seconds=0.0) == 5  # no cap: min_runs and min_seconds
