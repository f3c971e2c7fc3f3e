from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actprof.activations import ACTIVATIONS, IDENTITY, check_init, get, names, parse_list
from actprof.errors import UsageError
from actprof.settings.training import INITS

REQUIRED = (
    "relu",
    "leaky_relu",
    "prelu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "gelu_tanh",
    "sigmoid",
    "tanh",
    "softplus",
    "silu",
    "mish",
    "hardswish",
)
MONOTONIC = [name for name in REQUIRED if ACTIVATIONS[name].monotonic]
NON_MONOTONIC = [name for name in REQUIRED if not ACTIVATIONS[name].monotonic]
GRID = torch.linspace(-10, 10, 200_001, dtype=torch.float64)


def evaluate(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.to(x.dtype)(x)


def largest_drop(y: torch.Tensor) -> float:
    """max over i < j of y[i] - y[j]: zero exactly when y is non-decreasing."""
    running_max = torch.cummax(y, dim=0).values
    return float((running_max - y).max())


def assert_names_listed(message: str) -> None:
    for name in REQUIRED:
        assert name in message
    assert "'all'" in message


# --- the registry ------------------------------------------------------------------------------


def test_registry_has_exactly_the_required_names_in_order():
    assert tuple(names()) == REQUIRED
    assert tuple(ACTIVATIONS) == REQUIRED


@pytest.mark.parametrize("name", REQUIRED)
def test_registry_row_is_consistent(name):
    act = ACTIVATIONS[name]
    assert act.name == name
    assert act.summary
    assert act.init in INITS
    assert act.onnx_ops
    assert (act.param is None) == (act.default_param is None)
    assert act.alpha_dropout == (name == "selu")
    assert isinstance(act.module(), nn.Module)


@pytest.mark.parametrize(
    ("name", "init"),
    [("relu", "he"), ("elu", "he"), ("selu", "lecun"), ("sigmoid", "glorot"), ("tanh", "glorot")],
)
def test_init_policy_of_each_family(name, init):
    assert ACTIVATIONS[name].init == init


def test_identity_is_not_user_facing():
    assert "identity" not in ACTIVATIONS
    x = torch.randn(5)
    assert torch.equal(IDENTITY.module()(x), x)
    with pytest.raises(UsageError):
        get("identity")


# --- parse_list and get ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("elu", ["elu"]),
        ("relu,elu", ["relu", "elu"]),
        ("elu,relu", ["elu", "relu"]),
        ("relu,elu,relu", ["relu", "elu"]),
        (" ReLU , ELU ", ["relu", "elu"]),
        ("GELU_TANH", ["gelu_tanh"]),
        ("silu,,mish,", ["silu", "mish"]),
        ("tanh,TANH, tanh", ["tanh"]),
    ],
)
def test_parse_list(spec, expected):
    assert [a.name for a in parse_list(spec)] == expected


@pytest.mark.parametrize("spec", ["all", "ALL", " All ", "relu,all", "all,elu"])
def test_parse_list_all(spec):
    assert [a.name for a in parse_list(spec)] == list(REQUIRED)


@pytest.mark.parametrize("spec", ["", " ", ",", " , ,"])
def test_parse_list_empty_is_a_usage_error(spec):
    with pytest.raises(UsageError) as info:
        parse_list(spec)
    assert_names_listed(str(info.value))


@pytest.mark.parametrize("spec", ["swish", "relu,swish", "re lu", "relu6", "identity"])
def test_parse_list_unknown_is_a_usage_error(spec):
    with pytest.raises(UsageError) as info:
        parse_list(spec)
    message = str(info.value)
    assert "unknown activation" in message
    assert "\n" not in message
    assert_names_listed(message)


def test_get_is_case_and_space_tolerant():
    assert get("  Leaky_ReLU ") is ACTIVATIONS["leaky_relu"]


# --- check_init --------------------------------------------------------------------------------


@pytest.mark.parametrize("init", INITS)
def test_check_init_accepts_known(init):
    assert check_init(init) == init


@pytest.mark.parametrize("init", ["", "xavier", "kaiming", "He", "glorot "])
def test_check_init_rejects_unknown(init):
    with pytest.raises(UsageError) as info:
        check_init(init)
    for known in INITS:
        assert known in str(info.value)


# --- monotonicity ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MONOTONIC)
def test_flagged_monotonic_never_decreases(name):
    y = evaluate(ACTIVATIONS[name].module(), GRID)
    assert y.dtype == torch.float64
    assert largest_drop(y) <= 1e-12


@pytest.mark.parametrize("name", [n for n in NON_MONOTONIC if n != "prelu"])
def test_flagged_non_monotonic_decreases_somewhere(name):
    y = evaluate(ACTIVATIONS[name].module(), GRID)
    assert largest_drop(y) > 1e-3


def test_non_monotonic_flags_are_the_expected_ones():
    assert set(NON_MONOTONIC) == {"prelu", "gelu", "gelu_tanh", "silu", "mish", "hardswish"}


def test_prelu_is_flagged_non_monotonic_because_a_learned_slope_can_go_negative():
    prelu = ACTIVATIONS["prelu"]
    assert not prelu.monotonic
    assert largest_drop(evaluate(prelu.module(), GRID)) == 0.0
    assert largest_drop(evaluate(prelu.module(-0.5), GRID)) == pytest.approx(5.0)

    trained = prelu.module()
    with torch.no_grad():
        trained.weight.fill_(-0.3)
    assert largest_drop(evaluate(trained, GRID)) > 1.0


# --- the pool-first identity -------------------------------------------------------------------


@pytest.mark.parametrize("name", MONOTONIC)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pool_first_identity_holds_exactly_for_monotonic(name, dtype):
    module = ACTIVATIONS[name].module()
    generator = torch.Generator().manual_seed(1234)
    for scale in (1.0, 4.0):
        x = torch.randn(4, 3, 16, 16, generator=generator, dtype=dtype) * scale
        activate_then_pool = F.max_pool2d(evaluate(module, x), kernel_size=2)
        pool_then_activate = evaluate(module, F.max_pool2d(x, kernel_size=2))
        assert torch.equal(activate_then_pool, pool_then_activate)


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "silu", "mish", "hardswish"])
def test_pool_first_identity_fails_for_non_monotonic(name):
    module = ACTIVATIONS[name].module()
    x = torch.tensor([[[[-5.0, -1.3], [-6.0, -7.0]]]])
    activate_then_pool = F.max_pool2d(evaluate(module, x), kernel_size=2)
    pool_then_activate = evaluate(module, F.max_pool2d(x, kernel_size=2))
    assert float(activate_then_pool) > float(pool_then_activate) + 0.05


@pytest.mark.parametrize("name", ["gelu", "silu", "mish"])
def test_pool_first_identity_fails_on_random_input(name):
    module = ACTIVATIONS[name].module()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    activate_then_pool = F.max_pool2d(evaluate(module, x), kernel_size=2)
    pool_then_activate = evaluate(module, F.max_pool2d(x, kernel_size=2))
    assert not torch.equal(activate_then_pool, pool_then_activate)


# --- the parameter -----------------------------------------------------------------------------

NEGATIVE = torch.tensor([-4.0, -2.0, -1.0, -0.5, -0.1], dtype=torch.float64)
POSITIVE = torch.tensor([0.1, 0.5, 1.0, 3.0], dtype=torch.float64)


def test_elu_alpha():
    y = evaluate(ACTIVATIONS["elu"].module(0.5), NEGATIVE)
    assert torch.allclose(y, -0.5 * (1 - torch.exp(NEGATIVE)))
    assert torch.equal(evaluate(ACTIVATIONS["elu"].module(0.5), POSITIVE), POSITIVE)
    assert float(evaluate(ACTIVATIONS["elu"].module(), torch.tensor([-100.0]))) == pytest.approx(-1.0)


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.3])
def test_leaky_relu_slope(slope):
    y = evaluate(ACTIVATIONS["leaky_relu"].module(slope), NEGATIVE)
    assert torch.allclose(y, slope * NEGATIVE)
    assert torch.equal(evaluate(ACTIVATIONS["leaky_relu"].module(slope), POSITIVE), POSITIVE)


def test_leaky_relu_default_slope():
    assert ACTIVATIONS["leaky_relu"].module().negative_slope == 0.01


def test_prelu_init():
    module = ACTIVATIONS["prelu"].module(0.1)
    assert module.weight.numel() == 1
    assert float(module.weight.detach()) == pytest.approx(0.1)
    assert torch.allclose(evaluate(module, NEGATIVE), 0.1 * NEGATIVE)
    assert float(ACTIVATIONS["prelu"].module().weight.detach()) == pytest.approx(0.25)


def test_celu_alpha():
    y = evaluate(ACTIVATIONS["celu"].module(2.0), NEGATIVE)
    assert torch.allclose(y, 2.0 * (torch.exp(NEGATIVE / 2.0) - 1))


def test_softplus_beta():
    x = torch.cat([NEGATIVE, POSITIVE])
    y = evaluate(ACTIVATIONS["softplus"].module(2.0), x)
    assert torch.allclose(y, torch.log1p(torch.exp(2.0 * x)) / 2.0)


@pytest.mark.parametrize("name", [n for n in REQUIRED if ACTIVATIONS[n].param is None])
def test_parameterless_activation_ignores_param(name):
    x = torch.cat([NEGATIVE, POSITIVE])
    assert torch.equal(evaluate(ACTIVATIONS[name].module(0.7), x), evaluate(ACTIVATIONS[name].module(), x))


def test_selu_constants():
    y = evaluate(ACTIVATIONS["selu"].module(), torch.tensor([-100.0, 1.0], dtype=torch.float64))
    scale, alpha = 1.0507009873554805, 1.6732632423543772
    assert float(y[0]) == pytest.approx(-scale * alpha)
    assert float(y[1]) == pytest.approx(scale)


def test_gelu_variants_are_exact_and_tanh():
    x = torch.tensor([1.0], dtype=torch.float64)
    exact = float(evaluate(ACTIVATIONS["gelu"].module(), x))
    approx = float(evaluate(ACTIVATIONS["gelu_tanh"].module(), x))
    assert exact == pytest.approx(0.5 * (1 + math.erf(1 / math.sqrt(2))), abs=1e-12)
    assert approx == pytest.approx(0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715)), abs=1e-12)
    assert exact != approx


def test_module_returns_a_fresh_module_each_call():
    prelu = ACTIVATIONS["prelu"]
    assert prelu.module() is not prelu.module()
