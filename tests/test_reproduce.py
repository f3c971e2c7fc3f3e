"""``actprof reproduce``: published recipes trained for real (on the sample here, shortened), compared with the
published numbers by intervals that are checked against scipy."""

from __future__ import annotations

import json
import math

import pytest
from scipy import stats

from actprof import activations
from actprof.analysis import reproduction
from actprof.pipeline.reproduce import Plan
from actprof.settings.literature import EXPERIMENTS, METRICS
from actprof.settings.networks import NetworkSpec
from actprof.training.model import config_for
from tests.helpers import assert_user_error, run_cli


def test_every_recipe_is_buildable_and_every_published_number_names_a_cell_arm_and_metric(tmp_path):
    for experiment in EXPERIMENTS.values():
        cells = {c.label for c in experiment.cells}
        arms = {a.activation for a in experiment.arms}
        for published in experiment.published:
            assert published.cell in cells and published.activation in arms and published.metric in METRICS
            assert 0 < published.value < 1
        plan = Plan(experiment, (0, 1, 2), experiment.epochs, tmp_path)
        for cell in experiment.cells:
            NetworkSpec.parse(cell.model)
            for arm in experiment.arms:
                config_for(activations.get(arm.activation), plan.recipe(cell, arm))  # checks itself


def test_one_run_interval_is_the_t_prediction_interval():
    values = [0.91, 0.905, 0.918, 0.899]
    low, high = reproduction.one_run_interval(values)
    n, mean, sd = len(values), sum(values) / len(values), stats.tstd(values)
    half = stats.t.ppf(0.975, n - 1) * sd * math.sqrt(1 + 1 / n)
    assert low == pytest.approx(mean - half) and high == pytest.approx(mean + half)
    assert all(math.isnan(x) for x in reproduction.one_run_interval([0.9]))


@pytest.mark.parametrize(("published", "expected"), [(0.905, "inside"), (0.99, "above"), (0.5, "below"), (None, "—")])
def test_reach(published, expected):
    assert reproduction.reach(published, 0.89, 0.92) == expected


@pytest.mark.parametrize(
    ("published", "low", "high", "call"),
    [
        (0.27, 0.2, 0.35, "reproduces"),
        (-0.27, -0.35, -0.2, "reproduces"),
        (0.27, -0.35, -0.2, "contradicts"),
        (0.27, -0.01, 0.2, "within noise"),
        (None, 0.1, 0.2, "no published value"),
        (0.27, math.nan, math.nan, "too few seeds"),
    ],
)
def test_call(published, low, high, call):
    assert reproduction._call(published, low, high, (low - 1, high + 1)) == call


def test_a_difference_of_the_right_sign_but_another_size_is_said():
    # Swish's published collapse with depth (−58 points) against a small, clear drop
    assert reproduction._call(-0.58, -0.004, -0.002, (-0.006, 0.0)) == "same sign, another size"


def test_reproduce_selu_mnist_on_the_sample(tmp_path):
    result = run_cli(
        "reproduce", "selu-mnist", "--epochs", "2", "--seeds", "2", "--dataset", "sample",
        "--models", "m", "--out", "r", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "r" / "selu-mnist" / "reproduction.json").read_text())
    assert record["kind"] == "reproduction" and record["seeds"] == [0, 1] and record["epochs"] == 2
    by = {(v["activation"], v["metric"]): v for v in record["values"]}
    assert by[("selu", "val@1")]["published"] == 0.8090 and by[("selu", "val@1")]["measured"]["n"] == 2
    assert all(0 < v["measured"]["mean"] < 1 for v in record["values"])
    assert {c["what"] for c in record["contrasts"]} == {"SELU − ReLU, 784-512-256-10"}
    markdown = (tmp_path / "r" / "selu-mnist" / "reproduction.md").read_text()
    assert "Shortened: 2 of the published 20 epochs" in markdown and "bundled MNIST sample" in markdown
    assert "MLP mlp:512-256 (512-256 hidden layers, standardized pixels, 2 activation sites)" in markdown
    assert "published run inside?" in result.stdout + result.stderr
    again = run_cli(
        "reproduce", "selu-mnist", "--epochs", "2", "--seeds", "2", "--dataset", "sample",
        "--models", "m", "--out", "r", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0 and "resumed: 2 of 2 trainings" in again.stdout + again.stderr


def test_reproduce_refuses_unknown_names_and_lists_the_known(tmp_path):
    assert_user_error(run_cli("reproduce", "bogus", cwd=tmp_path), code=2, contains="unknown experiment 'bogus'")
    assert_user_error(run_cli("reproduce", cwd=tmp_path), code=2, contains="name an experiment")
    listed = run_cli("reproduce", "--list", cwd=tmp_path)
    assert listed.returncode == 0 and all(name in listed.stdout + listed.stderr for name in EXPERIMENTS)
    assert_user_error(
        run_cli("reproduce", "selu-mnist", "--epochs", "0", "--dataset", "sample", cwd=tmp_path),
        code=2,
        contains="--epochs must be at least 1",
    )
