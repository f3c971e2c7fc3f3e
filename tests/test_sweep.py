"""Fair convergence: learning-rate sweeps chosen on validation, interpolated time to accuracy, the deep CNN,
the dropout knobs, and resuming a sweep from the runs it saved."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from actprof import activations
from actprof.analysis import evidence, learning_rate, verdict
from actprof.errors import SweepFailed, UsageError
from actprof.report.files import write_reports
from actprof.schema import storage
from actprof.schema.training import ModelRecord, RunRecord, ValPoint, time_to
from actprof.settings.parse import parse_positive_floats
from actprof.settings.training import ModelConfig
from actprof.training.config import Recipe
from actprof.training.loop import validation_steps
from actprof.training.model import DeepCNN, SeedCNN, build, config_for
from tests.helpers import FAST, run_cli, train_and_export

SWEEP = replace(FAST, val_every=0, val_size=400)


# --- the --lr list --------------------------------------------------------------------------------


@given(st.lists(st.floats(min_value=1e-8, max_value=10.0), min_size=1, max_size=6))
def test_lr_list_round_trips(values):
    spec = ",".join(repr(v) for v in values)
    assert parse_positive_floats(spec, "--lr") == list(dict.fromkeys(values))


@pytest.mark.parametrize("spec", ["0", "-1e-3", "1e-3,0", "nan", "inf", "1e-3,-inf", "abc", "", " , "])
def test_lr_list_refuses_non_positive_or_non_finite(spec):
    with pytest.raises(UsageError, match="--lr must be a comma list"):
        parse_positive_floats(spec, "--lr")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "1e-3,0"], "--lr must be a comma list of finite positive numbers"),
        (["--lr", "nan"], "--lr must be a comma list of finite positive numbers"),
        (["--model", "resnet"], "unknown --model 'resnet'; give seed, deep, mlp:DEPTHxWIDTH"),
        (["--model", "seed,deep"], "--model takes one network per run"),
        (["--dropout", "1"], "--dropout must be in [0, 1), got 1.0"),
        (["--dropout", "-0.1"], "--dropout must be in [0, 1), got -0.1"),
        (["--act", "selu", "--alpha-dropout", "1.5"], "--alpha-dropout must be in [0, 1), got 1.5"),
        (["--act", "relu", "--alpha-dropout", "0.1"], "--alpha-dropout applies to selu only"),
    ],
)
def test_bad_sweep_options_are_one_line_and_exit_2(tmp_path, args, message):
    result = run_cli("train-export", "--dataset", "sample", "--out", str(tmp_path / "m"), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


# --- time to accuracy, interpolated -----------------------------------------------------------------


def curve(accuracies: list[float], seconds_per_step: float = 0.5) -> list[ValPoint]:
    return [ValPoint(step, step / 10, step * seconds_per_step, 0.0, acc, {}) for step, acc in enumerate(accuracies)]


def test_time_to_is_exact_on_a_linear_curve():
    points = [ValPoint(s, 0.0, 2.0 * s, 0.0, 0.1 + 0.1 * s, {}) for s in (0, 2, 4, 6, 8)]  # +0.1 per step
    hit = time_to(points, 0.55)
    assert hit.step == pytest.approx(4.5) and hit.seconds == pytest.approx(9.0)
    assert hit.resolution_steps == 2 and hit.resolution_seconds == pytest.approx(4.0)


@given(
    st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=30),
    st.floats(min_value=0.05, max_value=0.99),
)
def test_time_to_lies_inside_its_bracket(accuracies, target):
    points = curve(accuracies)
    hit = time_to(points, target)
    first = next((p for p in points if p.val_accuracy >= target), None)
    if first is None:
        assert hit.step is None and hit.seconds is None and hit.resolution_steps is None
        return
    assert first.step - hit.resolution_steps <= hit.step <= first.step
    assert first.train_seconds - hit.resolution_seconds <= hit.seconds <= first.train_seconds + 1e-12
    if first.step > 0:  # the point before is below the target: the crossing lies between them
        assert points[first.step - 1].val_accuracy < target


def test_validation_is_dense_where_curves_are_steep():
    steps = sorted(validation_steps(216, 0, 1))
    gaps = np.diff(steps)
    assert steps[-1] == 216 and len(steps) == 12
    assert gaps[:2].max() <= 8 and gaps[-4:].min() >= 26  # a few steps apart early, ~30 late
    assert len(validation_steps(216 * 10, 0, 10)) == 48  # four epochs' worth at most
    assert sorted(validation_steps(100, 30, 1)) == [30, 60, 90, 100]


def test_paired_difference_inside_the_resolution_is_not_evidence():
    mine, theirs = [1.00, 1.01, 1.02], [1.10, 1.11, 1.12]  # a consistent −0.1 s: significant by t-test alone
    assert evidence.paired("s", mine, theirs, higher_is_better=False).significant
    coarse = evidence.paired("s", mine, theirs, higher_is_better=False, resolution=0.5)
    assert not coarse.resolved and not coarse.significant
    fine = evidence.paired("s", mine, theirs, higher_is_better=False, resolution=0.05)
    assert fine.resolved and fine.significant


# --- the deep CNN and the dropout knobs -------------------------------------------------------------


def test_deep_cnn_has_six_convolutions_seven_sites_and_no_norm():
    model = build(config_for(activations.get("elu"), Recipe(architecture="deep")))
    assert isinstance(model, DeepCNN)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 6
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) for m in model.modules())
    assert [type(getattr(model, n)).__name__ for n in model.ACT_LAYERS] == ["ELU"] * 7
    assert model.eval()(torch.rand(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("name", ["relu", "elu", "selu", "leaky_relu"])
def test_deep_pool_first_computes_the_same_function(name):
    torch.manual_seed(0)
    model = build(config_for(activations.get(name), Recipe(architecture="deep"))).eval()
    x = torch.rand(8, 1, 28, 28)
    canonical = model(x)
    model.pool_first = True
    torch.testing.assert_close(model(x), canonical, rtol=0, atol=1e-6)


def test_dropout_knobs_reach_the_right_families():
    relu, selu = activations.get("relu"), activations.get("selu")
    assert config_for(relu).dropout == 0.25 and config_for(selu).dropout == 0.05  # the SELU paper's rate
    assert config_for(relu, Recipe(dropout=0.1, alpha_dropout=0.08)).dropout == 0.1
    assert config_for(selu, Recipe(dropout=0.1, alpha_dropout=0.08)).dropout == 0.08
    seed = SeedCNN(config_for(selu, Recipe(alpha_dropout=0.1)))
    assert seed.drop1.p == 0.1 and seed.drop1.alpha
    with pytest.raises(UsageError, match="--alpha-dropout must be in"):
        ModelConfig("selu", None, "lecun", dropout=1.0, alpha_dropout=True)


# --- sweeps: train, choose on validation, resume ----------------------------------------------------


@pytest.fixture(scope="module")
def swept(tmp_path_factory, sample):
    """relu and elu on the deep CNN, 2 learning rates × 2 seeds each, on the bundled sample."""
    out = tmp_path_factory.mktemp("sweep")
    records = [
        train_and_export(
            activations.get(name),
            SWEEP,
            sample,
            out,
            recipe=Recipe(architecture="deep"),
            extra_seeds=(1,),
            lrs=(1e-3, 3e-3),
        )
        for name in ("relu", "elu")
    ]
    return out, records


def test_sweep_trains_every_rate_and_seed_and_chooses_on_validation(swept):
    out, records = swept
    for record in records:
        assert len(record.all_runs) == 4 and {r.config.lr for r in record.all_runs} == {1e-3, 3e-3}
        means = {lr: np.mean([r.val_accuracy for r in record.all_runs if r.config.lr == lr]) for lr in (1e-3, 3e-3)}
        assert record.lr_choice.chosen == max(means, key=means.get)  # validation, not test accuracy
        assert {r.config.lr for r in record.runs} == {record.lr_choice.chosen}
        assert [r.config.seed for r in record.runs] == [0, 1]
        assert record.architecture == "deep" and record.export.activation_census
        assert sum(record.export.activation_census.values()) == 7 and not record.export.decomposed
        stem = f"{record.activation.name}-deep-lr{record.train.config.lr:g}-s0"
        run = storage.read_json(out / "runs" / f"{stem}.json", RunRecord)
        assert run.export.sha256 == record.export.sha256  # the chosen rate's first seed is the exported model
    assert len(list((out / "runs").glob("*.onnx"))) == 8


def test_a_second_sweep_resumes_from_the_saved_runs(swept, sample):
    out, records = swept
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    again = train_and_export(
        activations.get("relu"),
        SWEEP,
        sample,
        out,
        recipe=Recipe(architecture="deep"),
        extra_seeds=(1,),
        lrs=(1e-3, 3e-3),
    )
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == before  # nothing retrained
    assert again.train.step_loss == records[0].train.step_loss


def test_resume_retrains_only_what_changed_or_is_damaged(tmp_path, sample):
    act = activations.get("relu")

    def sweep_once(**kwargs):
        return train_and_export(act, SWEEP, sample, tmp_path, lrs=(1e-3, 2e-3), **kwargs)

    sweep_once()
    runs = tmp_path / "runs"
    stamp = lambda: {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}  # noqa: E731
    first = stamp()
    damaged = runs / "relu-seed-lr0.002-s0.json"
    damaged.write_text("{not json")
    sweep_once()
    second = stamp()
    assert second["relu-seed-lr0.001-s0.json"] == first["relu-seed-lr0.001-s0.json"]
    assert json.loads(damaged.read_text())["kind"] == "run"  # retrained and rewritten
    sweep_once(force=True)
    assert all(stamp()[name] != second[name] for name in second)


def test_a_diverged_run_leaves_the_rest_is_named_and_is_not_retrained(tmp_path, sample):
    act = activations.get("relu")
    diverging = replace(SWEEP, precision="fp32")

    def sweep_once():
        train_and_export(act, diverging, sample, tmp_path, lrs=(1e-3, 1e8))

    with pytest.raises(SweepFailed, match=r"relu, seed CNN, lr 1e\+08, seed 0: loss became"):
        sweep_once()
    record = storage.load_record(tmp_path / "relu.json")
    assert record.lr_choice.chosen == 1e-3
    assert [s.seeds for s in record.lr_choice.scores] == [1]
    saved = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert saved == ["relu-seed-lr0.001-s0.json", "relu-seed-lr0.001-s0.onnx", "relu-seed-lr100000000.0-s0.json"]
    assert json.loads((tmp_path / "runs" / saved[2]).read_text())["kind"] == "diverged"
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()}
    with pytest.raises(SweepFailed, match="diverged runs stay recorded"):  # still reported, not retrained
        sweep_once()
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()} == before


# --- the report ---------------------------------------------------------------------------------


def test_report_compares_at_the_best_and_at_a_shared_rate(swept, tmp_path):
    _, records = swept
    built = verdict.build(records, None, baseline="relu")
    study = built.lr_study
    assert study.lrs == [1e-3, 3e-3] and len(study.cells) == 4
    assert {c.activation for c in study.cells if c.chosen} == {"relu", "elu"}
    runs = [r for m in records for r in m.all_runs]
    accuracy = {lr: np.mean([r.val_accuracy for r in runs if r.config.lr == lr]) for lr in study.lrs}
    assert study.shared_lr == max(accuracy, key=accuracy.get)
    relu = next(m for m in records if m.name == "relu")
    assert study.shared_target == learning_rate.common_target(learning_rate.at_lr(relu, study.shared_lr))
    elu = next(s for s in study.at_shared if s.activation == "elu")
    assert elu.vs_baseline is None or elu.vs_baseline.what.endswith(f"at lr {study.shared_lr:g}")
    write_reports(tmp_path, ["md", "html"], built, records, None, None, None)
    md = (tmp_path / "report.md").read_text()
    assert "deep CNN (6 conv + 2 dense, no batch norm, 7 activation sites)" in md
    assert "## Learning rates" in md and "## At one shared learning rate" in md and "never the test set" in md
    html = (tmp_path / "report.html").read_text()
    assert "Final validation accuracy vs learning rate" in html and "deep CNN" in html


def test_the_learning_rate_tables_are_on_the_verdicts_clock(swept):
    """Priced: steps × the stack's step time, as the verdicts are; without a step time: steps, never the runs'
    own clock (which counts whatever speed-ups the trainer had)."""
    from actprof.analysis.pricing import Pricing
    from actprof.report.training_tables import lr_rows, shared_lr_rows
    from actprof.schema.profiling import Interval

    _, records = swept
    relu = next(m for m in records if m.name == "relu")
    target, _ = verdict.default_target(relu)
    ratios = {"relu": Interval(1.0, 1.0, 1.0, 15), "elu": Interval(1.5, 1.4, 1.6, 15)}
    priced = learning_rate.study(records, relu, target, Pricing("eager", 0.01, ratios))
    in_steps = learning_rate.study(records, relu, target)
    reached = [(a, b) for a, b in zip(priced.cells, in_steps.cells, strict=True) if b.seconds_to_target.n]
    assert reached  # relu reaches the target at its own rate in every seed
    for seconds, steps in reached:
        price = 0.01 * ratios[seconds.activation].value
        assert seconds.seconds_to_target.mean == pytest.approx(steps.seconds_to_target.mean * price)
    for on, clock in ((priced, "seconds to"), (in_steps, "steps to")):
        elu = next(s for s in on.at_shared if s.activation == "elu").vs_baseline
        assert elu is None or (elu.what.startswith(clock) and elu.what.endswith(f"at lr {on.shared_lr:g}"))
    built = verdict.build(records, None, baseline="relu")  # no steps.json: steps
    assert any(key.startswith("steps → ") for key in shared_lr_rows(built)[0])
    assert any(cell.endswith(" steps") for row in lr_rows(built) for cell in row.values())


def test_one_report_refuses_mixed_networks(swept, trained_models):
    _, deep = swept
    _, seed = trained_models
    with pytest.raises(UsageError, match="mixes networks"):
        verdict.build([seed["relu"], *deep], None, baseline="relu")


def test_records_before_the_sweep_still_load(trained_models):
    out, _ = trained_models
    data = json.loads((out / "relu.json").read_text())
    data["schema_version"] = 2
    for key in ("sweep_runs", "lr_choice"):
        data.pop(key, None)
    for field in ("architecture",):
        data["train"]["model"].pop(field, None)
    old = storage.from_dict(ModelRecord, data)
    assert old.architecture == "seed" and old.lr_choice is None and math.isfinite(old.train.test_accuracy)
