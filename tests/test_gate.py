"""``actprof diff``: each change with its 95% interval and a call, on real result sets with planted changes."""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actprof.analysis import gate
from actprof.cli.main import main
from actprof.errors import EXIT_REGRESSION, UsageError
from actprof.schema.profiling import Interval
from actprof.schema.reports import ReportRecord
from actprof.schema.storage import read_json, write_json

REPORTS = Path(__file__).resolve().parent.parent / "reports"
# Narrow intervals (MOVER about ±1.4%) and wide ones (about ±8.5%): the same planted factor lands inside or
# outside the threshold depending on how well each side was measured.
NARROW = ("elu+pool-first", ("cpu", "fp32", 1, "compute"))
WIDE = ("elu", ("cpu", "fp32", 1, "compute"))
FULL_MNIST_TEST = 10_000


@pytest.fixture(scope="module")
def real() -> ReportRecord:
    """A committed, real result set (full MNIST, CPU and OpenVINO latency with their intervals). It predates
    ``test_images``; its dataset is full MNIST, whose test set the accuracies were scored on."""
    record = read_json(REPORTS / "example-deploy" / "report.json", ReportRecord)
    counted = [dataclasses.replace(s, test_images=FULL_MNIST_TEST) for s in record.activations]
    return dataclasses.replace(record, activations=counted)


def key_of(row) -> tuple:
    return row.provider, row.precision, row.batch, row.mode


def plant_latency(record: ReportRecord, activation: str, key: tuple, factor: float) -> ReportRecord:
    """``record`` with one latency ratio (its value and interval) scaled by ``factor``."""

    def scaled(row):
        v = row.vs_baseline
        return dataclasses.replace(row, vs_baseline=Interval(v.value * factor, v.low * factor, v.high * factor, v.n))

    return with_latency(record, activation, lambda rows: [scaled(r) if key_of(r) == key else r for r in rows])


def with_latency(record: ReportRecord, activation: str, change) -> ReportRecord:
    return _replace_summary(record, activation, lambda s: dataclasses.replace(s, latency=change(s.latency)))


def plant_accuracy(record: ReportRecord, activation: str, accuracy: float, images: int | None = None) -> ReportRecord:
    def planted(s):
        return dataclasses.replace(s, test_accuracy=accuracy, test_images=s.test_images if images is None else images)

    return _replace_summary(record, activation, planted)


def _replace_summary(record, activation, change):
    assert any(s.name == activation for s in record.activations)
    return dataclasses.replace(
        record, activations=[change(s) if s.name == activation else s for s in record.activations]
    )


def change_of(result: gate.Diff, activation: str, key: tuple | None = None) -> gate.Change:
    """The change of ``activation``'s test accuracy (no ``key``) or of its latency ratio at ``key``."""
    return next(
        c
        for c in result.changes
        if c.activation == activation and (c.quantity == gate.ACCURACY if key is None else key_of(c) == key)
    )


# --- latency: MOVER on planted changes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "factor", "call"),
    [
        (NARROW, 1.01, "no change"),  # inside the threshold, interval and all
        (NARROW, 0.99, "no change"),  # improved, but within the threshold
        (NARROW, 1.30, "regression"),  # the whole interval beyond 5%
        (NARROW, 1.05, "inconclusive"),  # the interval straddles 5%
        (NARROW, 0.80, "improvement"),  # the whole interval below 1/1.05
        (WIDE, 1.08, "inconclusive"),  # 8% slower by the point, but the two runs' noise covers 5%
        (WIDE, 1.03, "inconclusive"),  # within 5% by the point, yet 5% cannot be ruled out
        (WIDE, 1.30, "regression"),
    ],
)
def test_planted_latency_changes_are_called_by_their_interval(real, row, factor, call):
    activation, key = row
    result = gate.diff(real, plant_latency(real, activation, key, factor), threshold=0.05)
    change = change_of(result, activation, key)
    assert change.call == call, change
    assert change.change == pytest.approx(factor)
    assert change.low <= change.change <= change.high
    others = [c for c in result.changes if c is not change]
    assert all(c.call == "no change" and c.reason == gate.IDENTICAL for c in others)
    assert result.regressions == ([change] if call == "regression" else [])
    assert result.changes[0] is change or call == "no change"  # regressions and inconclusive come first


def test_a_wider_threshold_turns_the_same_change_into_no_change(real):
    activation, key = NARROW
    new = plant_latency(real, activation, key, 1.05)
    assert change_of(gate.diff(real, new, threshold=0.05), activation, key).call == "inconclusive"
    assert change_of(gate.diff(real, new, threshold=0.10), activation, key).call == "no change"
    assert change_of(gate.diff(real, new, threshold=0.01), activation, key).call == "regression"


def test_mover_of_symmetric_log_intervals_is_the_root_sum_of_squares():
    old = Interval(1.0, math.exp(-0.03), math.exp(0.03), 20)
    new = Interval(1.2, 1.2 * math.exp(-0.04), 1.2 * math.exp(0.04), 20)
    point, low, high = gate.mover_ratio(old, new)
    assert point == pytest.approx(1.2)
    assert (low, high) == pytest.approx((1.2 * math.exp(-0.05), 1.2 * math.exp(0.05)))


def test_mover_keeps_the_asymmetry_of_each_side():
    old = Interval(1.0, 0.99, 1.20, 20)  # BASE could have been much slower, hardly faster
    new = Interval(1.0, 1.0, 1.0, 20)
    _, low, high = gate.mover_ratio(old, new)
    assert low == pytest.approx(1 / 1.2) and high == pytest.approx(1 / 0.99)


def interval(center: float, down: float, up: float, n: int) -> Interval:
    return Interval(center, center * math.exp(-down), center * math.exp(up), n)


INTERVALS = st.builds(
    interval,
    st.floats(0.05, 20),
    st.floats(0, 1),
    st.floats(0, 1),
    st.integers(2, 200),
)


@settings(max_examples=300, deadline=None)
@given(old=INTERVALS, new=INTERVALS)
def test_the_mover_interval_contains_the_point_change(old, new):
    point, low, high = gate.mover_ratio(old, new)
    assert point == pytest.approx(new.value / old.value)
    assert low <= point * (1 + 1e-12) and point <= high * (1 + 1e-12)


@settings(max_examples=300, deadline=None)
@given(same=INTERVALS)
def test_the_mover_interval_of_identical_inputs_contains_one(same):
    point, low, high = gate.mover_ratio(same, same)
    assert point == 1.0
    assert low <= 1.0 <= high


def one_round(row) -> Interval:
    """A ratio measured in a single round: a point, no interval."""
    return Interval(row.vs_baseline.value, row.vs_baseline.value, row.vs_baseline.value, 1)


def test_a_ratio_without_an_interval_is_inconclusive_unless_identical(real):
    activation, key = NARROW
    bare = with_latency(real, activation, lambda rows: [dataclasses.replace(r, vs_baseline=one_round(r)) for r in rows])
    change = change_of(gate.diff(real, plant_latency(bare, activation, key, 1.001), threshold=0.05), activation, key)
    assert change.call == "inconclusive" and "no interval in NEW" in change.reason
    assert math.isnan(change.low) and change.change == pytest.approx(1.001, rel=1e-9)
    assert change_of(gate.diff(bare, bare, threshold=0.05), activation, key).call == "no change"


# --- test accuracy: Newcombe's hybrid score interval ---------------------------------------------------------


def test_newcombe_interval_matches_his_worked_example():
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 − 48/80 = 0.2000, method 10.
    low, high = gate.newcombe_difference(48, 80, 56, 70)
    assert (low, high) == pytest.approx((0.0524, 0.3339), abs=5e-5)


@pytest.mark.parametrize(("correct", "n"), [(0, 10), (81, 263), (9_870, 10_000), (10_000, 10_000)])
def test_wilson_interval_matches_scipy(correct, n):
    from scipy import stats

    expected = stats.binomtest(correct, n).proportion_ci(method="wilson")
    assert gate.wilson(correct, n) == pytest.approx((expected.low, expected.high), abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(
    old_n=st.integers(1, 20_000),
    new_n=st.integers(1, 20_000),
    old_share=st.floats(0, 1),
    new_share=st.floats(0, 1),
)
def test_the_accuracy_interval_contains_the_difference_and_stays_in_range(old_n, new_n, old_share, new_share):
    old, new = round(old_share * old_n), round(new_share * new_n)
    low, high = gate.newcombe_difference(old, old_n, new, new_n)
    d = new / new_n - old / old_n
    assert -1 - 1e-12 <= low <= d + 1e-12 and d - 1e-12 <= high <= 1 + 1e-12
    same_low, same_high = gate.newcombe_difference(old, old_n, old, old_n)
    assert same_low <= 0 <= same_high


@pytest.mark.parametrize(
    ("accuracy", "threshold", "call"),
    [
        (0.9650, 0.05, "no change"),  # −0.26 points: far inside 5% of 96.76% (4.84 points)
        (0.9000, 0.05, "regression"),  # −6.8 points, interval and all beyond 4.84
        (0.9676 * 0.95, 0.05, "inconclusive"),  # a drop of exactly the threshold: the interval straddles it
        (0.9900, 0.01, "improvement"),  # +2.2 points, interval and all beyond 1% of 96.76%
    ],
)
def test_planted_accuracy_changes_are_called_by_their_interval(real, accuracy, threshold, call):
    base = plant_accuracy(real, "elu", 0.9676)
    change = change_of(gate.diff(base, plant_accuracy(base, "elu", accuracy), threshold=threshold), "elu")
    assert change.call == call, change
    assert change.change == pytest.approx(accuracy - 0.9676)
    assert change.low <= change.change <= change.high


def test_a_smaller_test_set_makes_the_same_drop_inconclusive(real):
    base = plant_accuracy(real, "elu", 0.9676, images=200)
    change = change_of(gate.diff(base, plant_accuracy(base, "elu", 0.90), threshold=0.05), "elu")
    assert change.call == "inconclusive"


def test_an_accuracy_without_its_test_set_size_is_inconclusive_unless_identical(real):
    older = plant_accuracy(real, "elu", 0.9676, images=0)  # a report from before test_images was recorded
    change = change_of(gate.diff(older, plant_accuracy(older, "elu", 0.5), threshold=0.05), "elu")
    assert change.call == "inconclusive" and "no test-set size in BASE" in change.reason
    assert change_of(gate.diff(older, older, threshold=0.05), "elu").call == "no change"


# --- whole result sets ------------------------------------------------------------------------------------------


def test_two_real_runs_give_every_call():
    """The committed H100 run against its CUDA-graph re-run: two independent measurements of the same models."""
    run = REPORTS / "gpu" / "nvidia-h100-80gb-hbm3"
    base, new = gate.load_report(run), gate.load_report(run / "cuda-graph")
    at_5 = gate.diff(base, new, threshold=0.05)
    assert not at_5.regressions and at_5.inconclusive and at_5.called("no change")
    at_1 = gate.diff(base, new, threshold=0.01)
    assert {c.call for c in at_1.changes} >= {"regression", "inconclusive", "no change"}
    assert [c.call for c in at_1.changes] == sorted((c.call for c in at_1.changes), key=gate.CALLS.index)
    assert at_5.not_compared  # the CUDA-graph re-run profiled CUDA only: BASE's CPU rows are named, not dropped


def test_an_identical_result_set_changed_nothing(real):
    same = gate.diff(real, real, threshold=0.0)  # even at 0%: the same measurement read twice
    assert same.identical and not same.regressions and not same.inconclusive


def test_a_missing_row_is_named_not_dropped(real):
    activation, key = NARROW
    fewer = with_latency(real, activation, lambda rows: [r for r in rows if key_of(r) != key])
    result = gate.diff(real, fewer, threshold=0.05)
    assert not result.identical
    assert result.not_compared == [f"{activation} latency (cpu fp32, batch 1, compute) (not in NEW)"]


def test_reports_against_different_baselines_are_refused(real):
    with pytest.raises(UsageError, match="--baseline relu"):
        gate.diff(real, dataclasses.replace(real, baseline="elu"), threshold=0.05)
    with pytest.raises(UsageError, match="no activation in common"):
        gate.diff(real, dataclasses.replace(real, activations=[]), threshold=0.05)


# --- the command line ------------------------------------------------------------------------------------------


def invoke(capsys, monkeypatch, *args: str) -> tuple[int, str]:
    """``actprof ARGS`` in this process, as the console script runs it: its exit code and output."""
    monkeypatch.setattr(sys, "argv", ["actprof", *args])
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        signal.signal(signal.SIGINT, handler)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out + captured.err


@pytest.fixture
def diff_cli(tmp_path, capsys, monkeypatch, real):
    """``actprof diff BASE NEW [options]`` with BASE the real report and NEW the record given."""
    write_json(tmp_path / "base" / "report.json", real)

    def run(new: ReportRecord, *options: str) -> tuple[int, str]:
        write_json(tmp_path / "new" / "report.json", new)
        return invoke(capsys, monkeypatch, "diff", str(tmp_path / "base"), str(tmp_path / "new"), *options)

    return run


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("actprof: error:")]


def test_diff_exits_0_when_nothing_changed(diff_cli, real):
    code, output = diff_cli(real, "--strict")
    assert code == 0, output
    assert "Nothing changed" in output and not error_lines(output)


def test_diff_exits_4_on_a_regression_naming_it(diff_cli, real):
    """A regression has its own exit code, so that CI tells it from actprof failing (1)."""
    code, output = diff_cli(plant_latency(real, *NARROW, 1.30))
    assert code == EXIT_REGRESSION == 4, output
    assert error_lines(output) == [
        "actprof: error: 1 regression(s) beyond 5%: elu+pool-first latency × relu (cpu fp32, batch 1, compute)"
    ]
    assert "REGRESSION" in output and "95% CI" in output


def test_diff_passes_an_inconclusive_change_and_fails_it_with_strict(diff_cli, real):
    inconclusive = plant_latency(real, *WIDE, 1.08)
    code, output = diff_cli(inconclusive)
    assert code == 0, output
    assert "1 inconclusive" in output and "--strict would fail" in output
    code, output = diff_cli(inconclusive, "--strict")
    assert code == 3, output
    [line] = error_lines(output)
    assert "1 change(s) inconclusive at 5% (--strict): elu latency × relu (cpu fp32, batch 1, compute)" in line


def test_diff_passes_an_improvement(diff_cli, real):
    code, output = diff_cli(plant_latency(real, *NARROW, 0.80), "--strict")
    assert code == 0, output
    assert "No regression beyond 5%: 1 improvement" in output


def test_diff_refuses_reports_against_another_baseline(diff_cli, real):
    code, output = diff_cli(dataclasses.replace(real, baseline="elu"))
    assert code == 2 and len(error_lines(output)) == 1 and "--baseline relu" in output
