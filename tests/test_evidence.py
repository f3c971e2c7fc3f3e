from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from actprof import activations
from actprof.analysis import verdict
from actprof.analysis.evidence import estimate, paired
from actprof.report.markdown import markdown
from actprof.settings.training import TrainConfig
from actprof.training.model import SeedCNN, config_for
from tests.helpers import train_and_export

VALUES = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=2, max_size=30)


@given(VALUES)
@settings(max_examples=100, deadline=None)
def test_estimate_agrees_with_scipy(values):
    e = estimate(values)
    assert e.n == len(values)
    assert e.mean == pytest.approx(np.mean(values), abs=1e-6)
    if np.std(values) > 1e-9:
        low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
        assert e.low == pytest.approx(low, rel=1e-9, abs=1e-6)
        assert e.high == pytest.approx(high, rel=1e-9, abs=1e-6)


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100)), min_size=2, max_size=20))
@settings(max_examples=100, deadline=None)
@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy, on near-identical pairs
def test_paired_comparison_agrees_with_scipy(pairs):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    c = paired("x", a, b, higher_is_better=True)
    diffs = np.subtract(a, b)
    assert c.n == len(pairs)
    assert c.mean_difference == pytest.approx(diffs.mean(), abs=1e-9)
    if diffs.std(ddof=1) > 1e-9:
        result = stats.ttest_rel(a, b)
        assert c.p_value == pytest.approx(result.pvalue, rel=1e-6, abs=1e-12)
        low, high = result.confidence_interval(0.95)
        assert (c.low, c.high) == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))
        assert c.effect_size == pytest.approx(diffs.mean() / diffs.std(ddof=1))
        assert c.significant == (result.pvalue < 0.05)


def test_a_run_that_never_reached_is_counted_not_dropped():
    c = paired("seconds to 99%", [1.0, None, 3.0], [2.0, 2.5, None], higher_is_better=False)
    assert c.n == 1
    assert c.reached == "2/3 vs 2/3"
    assert math.isnan(c.low) and not c.significant


def test_single_values_have_no_interval():
    e = estimate([0.97])
    assert e.n == 1 and math.isnan(e.low) and math.isnan(e.high)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, sample):
    out = tmp_path_factory.mktemp("seeded")
    config = TrainConfig(epochs=1, val_every=5, val_size=300)
    records = [
        train_and_export(act, config, sample, out, extra_seeds=(1, 2))
        for act in (activations.get("relu"), activations.get("elu"))
    ]
    return out, records


def test_every_seed_is_trained_and_recorded(seeded):
    _, (relu, elu) = seeded
    assert [r.config.seed for r in relu.runs] == [0, 1, 2]
    assert [r.config.seed for r in elu.runs] == [0, 1, 2]
    assert len({r.test_accuracy for r in relu.runs}) > 1  # different seeds, different runs


def test_a_seed_fixes_the_initial_draw_for_every_activation(sample):
    import torch

    weights = []
    for name in ("relu", "elu", "gelu"):
        torch.manual_seed(7)
        weights.append(SeedCNN(config_for(activations.get(name))).conv1.weight.detach().clone())
    assert torch.equal(weights[0], weights[1]) and torch.equal(weights[1], weights[2])


def test_same_seed_reproduces_the_record_bit_for_bit(tmp_path, sample):
    act = activations.get("elu")
    config = TrainConfig(epochs=1, val_every=5, val_size=300, seed=3)
    a = train_and_export(act, config, sample, tmp_path / "a")
    b = train_and_export(act, config, sample, tmp_path / "b")
    assert (tmp_path / "a" / "elu.onnx").read_bytes() == (tmp_path / "b" / "elu.onnx").read_bytes()
    for field in ("step_loss", "step_accuracy", "val_loss", "test_loss", "test_accuracy", "layer_stats"):
        assert getattr(a.train, field) == getattr(b.train, field), field
    assert [(p.step, p.val_loss, p.val_accuracy, p.grad_norms) for p in a.train.validation] == [
        (p.step, p.val_loss, p.val_accuracy, p.grad_norms) for p in b.train.validation
    ]


def test_report_pairs_seeds_and_says_whether_it_is_significant(seeded):
    _, (relu, elu) = seeded
    report = verdict.build([relu, elu], None, baseline="relu")
    summary = next(s for s in report.activations if s.name == "elu")
    assert summary.seeds == [0, 1, 2]
    assert summary.over_seeds["test accuracy"].n == 3
    comparison = next(c for c in summary.vs_baseline if c.what == "test accuracy")
    assert comparison.n == 3
    expected = stats.ttest_rel([r.test_accuracy for r in elu.runs], [r.test_accuracy for r in relu.runs]).pvalue
    assert comparison.p_value == pytest.approx(expected)
    text = markdown(report, None)
    assert "Paired by seed" in text
    assert ("within noise" in text) or ("significantly" in text)
