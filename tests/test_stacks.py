"""The training half priced where users train: steps from the fast trainer, seconds from a stack's step time."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from actprof import activations, api
from actprof.analysis.calls import training_direction
from actprof.analysis.pricing import Pricing, priced_comparison
from actprof.errors import DeviceUnavailable, UsageError
from actprof.report.captions import decision_caption
from actprof.report.step_tables import seconds_to_target, step_note, step_seconds
from actprof.report.training_tables import convergence_rows
from actprof.schema.profiling import Interval
from actprof.schema.training import reached
from actprof.settings.training import TrainConfig
from actprof.training import stacks
from actprof.training.config import Recipe
from actprof.training.kernels import build
from actprof.training.model import build as build_network
from actprof.training.model import config_for

NAMES = ["relu", "elu", "selu", "gelu", "prelu", "softplus"]


def _copy_weights(canonical: nn.Module, plain: nn.Sequential) -> None:
    """The canonical network's weights into the plain one, layer by layer in order."""
    weighted = [m for m in plain if isinstance(m, nn.Conv2d | nn.Linear | nn.PReLU)]
    source = [m for m in canonical.modules() if isinstance(m, nn.Conv2d | nn.Linear | nn.PReLU)]
    ordered = sorted(source, key=lambda m: list(canonical.modules()).index(m))
    for target, module in zip(weighted, _forward_order(canonical, ordered), strict=True):
        target.load_state_dict(module.state_dict())


def _forward_order(canonical: nn.Module, modules: list[nn.Module]) -> list[nn.Module]:
    """The weighted modules in the order a forward pass uses them (the activations' PReLUs interleaved)."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, _i, _o: order.append(m)) for m in modules]
    canonical.eval()(torch.rand(1, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    return order


@pytest.mark.parametrize("architecture", ["seed", "deep"])
@pytest.mark.parametrize("name", NAMES)
def test_the_plain_network_is_the_function_actprof_trains(name, architecture):
    """Steps to an accuracy hold for any stack because every stack computes the same function."""
    torch.manual_seed(0)
    config = config_for(activations.get(name), Recipe(architecture=architecture))
    canonical = build_network(config).eval()
    plain = stacks.plain_network(config).eval()
    _copy_weights(canonical, plain)
    x = torch.rand(16, 1, 28, 28)
    with torch.inference_mode():
        assert torch.allclose(plain(x), canonical(x), atol=1e-5)


def test_the_plain_network_is_torchs_layers_only():
    for name in ("selu", "relu"):
        network = stacks.plain_network(config_for(activations.get(name)))
        kinds = {type(m).__module__.split(".")[0] for m in network.modules()}
        assert kinds == {"torch"}, kinds  # no FastDropout, no kernel: what a user writes
    dropouts = {type(m) for m in stacks.plain_network(config_for(activations.get("selu"))).modules()}
    assert nn.AlphaDropout in dropouts


def test_the_eager_step_never_touches_actprofs_kernels(monkeypatch, sample):
    """The stack that prices the verdict does not depend on whether the fast trainer's kernels ran here."""

    def not_here():
        raise AssertionError("the eager stack called actprof's kernels")

    monkeypatch.setattr(build, "library", not_here)
    step = stacks.step_for(
        "eager", config_for(activations.get("elu")), TrainConfig(precision="fp32"), torch.device("cpu")
    )
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    loss, _ = step.stepper.step(x, y)
    assert torch.isfinite(loss) and step.identity.stack == "eager" and not step.identity.kernels


@pytest.mark.parametrize("kernels", ["1", "0"])
def test_step_prices_on_eager_are_the_same_with_or_without_the_kernels(
    monkeypatch, trained_models, sample, tmp_path, kernels
):
    from actprof.analysis import verdict

    monkeypatch.setenv("ACTPROF_KERNELS", kernels)
    models, records = trained_models
    record = api.step_time(models, stacks=["eager", "actprof"], names=["relu", "elu"], data=sample, out=tmp_path)
    eager, fast = (next(i for i in record.stacks if i.stack == s) for s in ("eager", "actprof"))
    assert not eager.kernels and eager.optimizer.startswith("Adam")
    assert fast.kernels == (kernels == "1")  # which speed-ups ran is recorded with what they cost
    assert {c.stack for c in record.costs} == {"eager", "actprof"}
    assert all(c.stats.runs >= 15 for c in record.costs)  # enough rounds for an interval inside the range
    relu = next(c for c in record.costs if c.activation == "relu" and c.stack == "eager")
    assert relu.vs_baseline.value == pytest.approx(1.0)
    # which speed-ups a run's trainer had does not move its seconds priced on eager (only the flag says so)
    as_trained = [records["relu"], records["elu"]]
    elu = records["elu"]
    other = dataclasses.replace(elu.train.trainer, kernels=not elu.train.trainer.kernels)
    toggled = [as_trained[0], dataclasses.replace(elu, train=dataclasses.replace(elu.train, trainer=other))]
    priced, again = (
        verdict.build(m, None, baseline="relu", steps=record, stack="eager") for m in (as_trained, toggled)
    )
    assert [v.train_seconds for v in again.verdicts] == [v.train_seconds for v in priced.verdicts]
    assert [s.seconds_to_target for s in again.activations] == [s.seconds_to_target for s in priced.activations]
    assert again.activations[1].trainer_differs and not priced.activations[1].trainer_differs


def test_unknown_or_impossible_stacks_are_refused_in_one_line(monkeypatch):
    with pytest.raises(UsageError, match="unknown --train-stack 'jax'"):
        stacks.check_stack("jax", torch.device("cpu"))
    monkeypatch.setattr(stacks.shutil, "which", lambda _name: None)
    with pytest.raises(UsageError, match="needs a C\\+\\+ compiler"):
        stacks.check_stack("compile", torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_a_cuda_stack_without_a_gpu_is_refused():
    from actprof.pipeline.steps import check_stacks

    with pytest.raises(DeviceUnavailable, match="--device cuda"):
        check_stacks(["eager"], TrainConfig(device="cuda"))


# --- pricing --------------------------------------------------------------------------------------


def _run(steps_to_90: float | None, seed: int):
    """A training record whose curve crosses 90% at ``steps_to_90`` (None: never)."""
    from actprof.schema.training import TrainResult, ValPoint

    top = 0.95 if steps_to_90 is not None else 0.85
    at = steps_to_90 or 100.0
    points = [ValPoint(0, 0.0, 0.0, 2.3, 0.1, {}), ValPoint(int(at), 1.0, 1.0, 0.5, 0.9 if steps_to_90 else top, {})]
    points.append(ValPoint(int(at) + 10, 1.0, 1.1, 0.4, top, {}))
    model = config_for(activations.get("relu"))
    return TrainResult(TrainConfig(seed=seed), model, 0, 0, 1.0, 1.0, [], [], points, [], 0.4, top, 0.4, top, [], 1)


def test_seconds_are_steps_times_the_stacks_step_and_carry_its_interval():
    pricing = Pricing("eager", 0.1, {"relu": Interval(1.0, 1.0, 1.0, 15), "elu": Interval(1.2, 1.1, 1.3, 15)})
    mine = [_run(s, i) for i, s in enumerate([50, 52, 48])]  # elu: fewer steps
    theirs = [_run(s, i) for i, s in enumerate([60, 61, 59])]
    assert pricing.seconds(mine, "elu", 0.9) == pytest.approx([50 * 0.12, 52 * 0.12, 48 * 0.12])
    c = priced_comparison(
        "seconds to 90% (eager)", mine, theirs, target=0.9, pricing=pricing, activation="elu", resolution_steps=1.0
    )
    assert c.mean_difference == pytest.approx(50 * 0.12 - 60 * 0.1)  # 6.0 − 6.0: the steps saved, spent again
    exact = dataclasses.replace(pricing, ratio={**pricing.ratio, "elu": Interval(1.2, 1.2, 1.2, 15)})
    narrow = priced_comparison("x", mine, theirs, target=0.9, pricing=exact, activation="elu", resolution_steps=1.0)
    assert c.low < narrow.low and narrow.high < c.high  # the interval holds the step ratio's own interval
    assert not c.significant  # 0 is inside


def test_the_p_value_agrees_with_the_widened_interval():
    """Significant at the measured step ratio, not at its interval's high end: the widened interval reaches 0,
    and p (the largest of the three) says so too."""
    elu = {"relu": Interval(1.0, 1.0, 1.0, 15), "elu": Interval(1.0, 0.9, 1.25, 15)}
    pricing = Pricing("eager", 0.1, elu)
    mine = [_run(s, i) for i, s in enumerate([50, 52, 48])]
    theirs = [_run(s, i) for i, s in enumerate([60, 61, 59])]

    def at(ratio: Interval):
        on = dataclasses.replace(pricing, ratio={**pricing.ratio, "elu": ratio})
        return priced_comparison("x", mine, theirs, target=0.9, pricing=on, activation="elu", resolution_steps=1.0)

    centre, high = at(Interval(1.0, 1.0, 1.0, 15)), at(Interval(1.25, 1.25, 1.25, 15))
    assert centre.p_value < 0.05 and centre.significant  # 1 s faster at the measured ratio
    assert high.low < 0 < high.high and high.p_value > 0.05  # at 1.25× the step, the gain is spent
    c = at(elu["elu"])
    assert c.mean_difference == pytest.approx(centre.mean_difference)
    assert c.low < 0 < c.high and c.p_value == pytest.approx(high.p_value) and not c.significant
    faster = at(Interval(1.0, 0.95, 1.05, 15))  # every ratio in the interval: still faster
    assert faster.significant and faster.high < 0 and centre.p_value <= faster.p_value < 0.05


def test_no_step_cost_no_price():
    pricing = Pricing("eager", 0.1, {"relu": Interval(1.0, 1.0, 1.0, 15)})
    assert pricing.seconds([_run(50, 0)], "mish", 0.9) == [None]


@pytest.fixture(scope="module")
def priced(trained_models, sample, tmp_path_factory):
    """relu, elu and gelu from the trained models, their steps timed on eager and actprof, and the report."""
    import shutil

    models, _ = trained_models
    here = tmp_path_factory.mktemp("priced")
    (here / "models").mkdir()
    for name in ("relu", "elu", "gelu"):
        for suffix in (".onnx", ".json"):
            shutil.copy(models / f"{name}{suffix}", here / "models" / f"{name}{suffix}")
    api.step_time(here / "models", stacks=["eager", "actprof"], data=sample, out=here)
    return here, api.report(here / "models", here, formats=["md", "json"])


def test_the_report_prices_training_seconds_on_eager(priced):
    _, report = priced
    record = report.record
    assert record.train_stack == "eager"
    summaries = {s.name: s for s in record.activations}
    relu_step = next(b.ms for b in summaries["relu"].steps if b.stack == "eager") / 1e3
    for v in record.verdicts:
        assert v.train_stack == "eager"
        if v.train_steps is not None:  # steps × the baseline's step × the activation's paired ratio to it
            ratio = next(b.vs_baseline.value for b in summaries[v.activation].steps if b.stack == "eager")
            assert v.train_seconds == pytest.approx(v.train_steps * ratio * relu_step)
            # the figures (curves, Pareto) draw the very seconds the verdict states
            assert seconds_to_target(record, summaries[v.activation]) == pytest.approx(v.train_seconds)
            assert step_seconds(record)[v.activation] == pytest.approx(ratio * relu_step)
        if v.baseline_train_steps is not None:
            assert seconds_to_target(record, summaries["relu"]) == pytest.approx(v.baseline_train_seconds)
        # one seed each: the training side is unsettled (and no profile here: the verdict is incomplete)
        assert training_direction(v) == "unsettled" and "one seed" in v.unsettled and v.call == "incomplete"
    text = (priced[0] / "report.md").read_text()
    assert "## The training step on each stack" in text and "actprof speed-up over eager" in text
    assert "on eager (vs relu)" in text and "the step time on eager" in text
    # the convergence table's seconds are on the verdicts' clock too, and say so
    level = f"{100 * record.target_accuracy:.0f}%"
    rows = {r["activation"]: r[f"steps / s on eager → {level}"] for r in convergence_rows(record)}
    relu_hit = reached(summaries["relu"].time_to_accuracy, record.target_accuracy)
    assert rows["relu"].startswith(f"{relu_hit.step:.1f} / {relu_hit.step * relu_step:.2f}")
    eager = next(i for i in record.stacks if i.stack == "eager")
    assert f"torch's layers; {eager.optimizer})" in step_note(record) and "as it comes" not in step_note(record)


def test_the_report_can_price_on_another_stack_and_refuses_one_not_timed(priced):
    here, _ = priced
    on_actprof = api.report(here / "models", here, formats=[], train_stack="actprof")
    assert {v.train_stack for v in on_actprof.record.verdicts} == {"actprof"}
    with pytest.raises(UsageError, match="no step time was measured on compile"):
        api.report(here / "models", here, formats=[], train_stack="compile")
    clock = api.report(here / "models", here / "elsewhere", formats=[])  # no steps.json there: the runs' own clock
    assert clock.record.train_stack == "" and "runs' own training clock" in decision_caption(clock.record)


def test_a_step_time_of_another_network_or_batch_is_refused(priced):
    from actprof.analysis.verdict import build
    from actprof.schema.steps import StepCostRecord
    from actprof.schema.storage import find_models, read_json, write_json

    here, _ = priced
    steps = read_json(here / "steps.json", StepCostRecord)
    records = [r for _, r in find_models(here / "models")]
    with pytest.raises(UsageError, match=r"network deep, but these models trained with network seed: .* re-run "):
        build(records, None, baseline="relu", steps=dataclasses.replace(steps, architecture="deep"), stack="eager")
    other = here / "other-batch"
    other.mkdir()
    write_json(other / "steps.json", dataclasses.replace(steps, batch=steps.batch + 1))
    with pytest.raises(UsageError, match=f"batch {steps.batch + 1}, but .* batch {steps.batch}: .*actprof step-time"):
        api.report(here / "models", other, formats=[])


def test_runs_trained_with_other_speed_ups_are_flagged(priced):
    from actprof.analysis.verdict import build
    from actprof.schema.storage import find_models

    here, _ = priced
    records = [r for _, r in find_models(here / "models")]
    elu = next(r for r in records if r.name == "elu")
    other = dataclasses.replace(elu.train.trainer, kernels=False, lanes=0, openmp=False)
    records = [
        dataclasses.replace(r, train=dataclasses.replace(r.train, trainer=other)) if r is elu else r for r in records
    ]
    built = build(records, None, baseline="relu")
    flagged = next(s for s in built.activations if s.name == "elu")
    assert "no kernels (the baseline: cpu" in flagged.trainer_differs and "kernels (" in flagged.trainer_differs
    assert "Trained with other speed-ups than the baseline — elu" in decision_caption(built)
    assert not next(s for s in built.activations if s.name == "gelu").trainer_differs


def test_trainer_identities_are_compared_seed_by_seed(priced):
    """Both sides ran both trainers, but never the same one on the same seed: every pair differs."""
    from actprof.analysis.verdict import build
    from actprof.schema.storage import find_models

    here, _ = priced
    records = {r.name: r for _, r in find_models(here / "models")}
    one = records["relu"].train.trainer
    two = dataclasses.replace(one, kernels=not one.kernels, lanes=0 if one.kernels else 8)

    def with_seeds(record, first, second):
        run = record.train
        seed1 = dataclasses.replace(run, config=dataclasses.replace(run.config, seed=1), trainer=second)
        return dataclasses.replace(record, train=dataclasses.replace(run, trainer=first), seed_runs=[seed1])

    built = build([with_seeds(records["relu"], one, two), with_seeds(records["elu"], two, one)], None, baseline="relu")
    flagged = next(s for s in built.activations if s.name == "elu").trainer_differs
    assert f"{two.machine()} (the baseline: {one.machine()}) in seed 0" in flagged
    assert f"{one.machine()} (the baseline: {two.machine()}) in seed 1" in flagged
