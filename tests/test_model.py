from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from actprof.activations import ACTIVATIONS
from actprof.errors import UsageError
from actprof.model import ACT_LAYERS, SeedCNN, config_for
from actprof.records import ModelConfig

CLASSIC_PARAMS = {"conv1": 320, "conv2": 18_496, "fc1": 409_856, "fc2": 2_570}
CLASSIC_TOTAL = 431_242
FAN_IN = {"conv1": 9, "conv2": 288, "fc1": 1600, "fc2": 256}
FAN_OUT = {"conv1": 288, "conv2": 576, "fc1": 256, "fc2": 10}


def build(name: str, seed: int = 0, **overrides) -> SeedCNN:
    torch.manual_seed(seed)
    return SeedCNN(config_for(ACTIVATIONS[name], **overrides))


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def weight_std(model: SeedCNN, layer: str) -> float:
    return float(model.weight_layers()[layer].weight.detach().double().std())


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("batch", [1, 7])
def test_output_shape(name, batch):
    model = build(name).eval()
    with torch.no_grad():
        out = model(torch.randn(batch, 1, 28, 28))
    assert out.shape == (batch, 10)
    assert torch.isfinite(out).all()


def test_output_shape_in_training_mode():
    model = build("selu").train()
    assert model(torch.randn(7, 1, 28, 28)).shape == (7, 10)


def test_parameter_count_per_layer():
    model = build("relu")
    assert {name: count(layer) for name, layer in model.weight_layers().items()} == CLASSIC_PARAMS
    assert sum(CLASSIC_PARAMS.values()) == CLASSIC_TOTAL


@pytest.mark.parametrize("name", [n for n in ACTIVATIONS if n != "prelu"])
def test_parameter_count_without_learned_activation(name):
    assert count(build(name)) == CLASSIC_TOTAL


def test_parameter_count_with_prelu_has_one_slope_per_site():
    model = build("prelu")
    assert [count(getattr(model, site)) for site in ACT_LAYERS] == [1, 1, 1]
    assert count(model) == CLASSIC_TOTAL + len(ACT_LAYERS)


# --- init policy -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["relu", "elu", "leaky_relu", "gelu", "mish"])
def test_he_normal(name):
    model = build(name)
    expected = math.sqrt(2 / FAN_IN["fc1"])
    assert model.config.init == "he"
    assert weight_std(model, "fc1") == pytest.approx(expected, rel=0.05)
    assert weight_std(model, "conv2") == pytest.approx(math.sqrt(2 / FAN_IN["conv2"]), rel=0.05)
    assert abs(float(model.fc1.weight.detach().double().mean())) < 0.01 * expected


def test_lecun_normal_for_selu():
    model = build("selu")
    assert model.config.init == "lecun"
    for layer in ("fc1", "conv2"):
        assert weight_std(model, layer) == pytest.approx(math.sqrt(1 / FAN_IN[layer]), rel=0.05)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_glorot_uniform(name):
    model = build(name)
    assert model.config.init == "glorot"
    for layer in ("fc1", "conv2"):
        bound = math.sqrt(6 / (FAN_IN[layer] + FAN_OUT[layer]))
        weight = model.weight_layers()[layer].weight.detach().abs()
        assert float(weight.max()) <= bound
        assert float(weight.max()) > 0.99 * bound
        assert weight_std(model, layer) == pytest.approx(bound / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_family_init_zeroes_biases(name):
    model = build(name)
    for layer in model.weight_layers().values():
        assert torch.count_nonzero(layer.bias) == 0


def test_default_init_keeps_pytorch_init():
    model = build("relu", init="default")
    assert model.config.init == "default"
    for name, layer in model.weight_layers().items():
        bound = 1 / math.sqrt(FAN_IN[name])
        assert torch.count_nonzero(layer.bias) > 0
        assert float(layer.weight.detach().abs().max()) <= bound
        assert float(layer.bias.detach().abs().max()) <= bound
    assert weight_std(model, "fc1") == pytest.approx(1 / math.sqrt(3 * FAN_IN["fc1"]), rel=0.05)


def test_default_init_matches_plain_pytorch_layers():
    torch.manual_seed(3)
    model = SeedCNN(config_for(ACTIVATIONS["relu"], init="default"))
    torch.manual_seed(3)
    conv1 = nn.Conv2d(1, 32, kernel_size=3)
    assert torch.equal(model.conv1.weight, conv1.weight)
    assert torch.equal(model.conv1.bias, conv1.bias)


# --- dropout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_dropout_kind(name):
    model = build(name)
    from actprof.model import ByteDropout

    for layer in (model.drop1, model.drop2):
        if name == "selu":  # alpha dropout at the SELU paper's 0.05: not a multiple of 1/256, so torch's own
            assert type(layer) is nn.AlphaDropout and layer.p == 0.05
        else:
            assert type(layer) is ByteDropout and not layer.alpha and layer.p == 0.25


# --- config_for --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_config_for_defaults(name):
    act = ACTIVATIONS[name]
    assert config_for(act) == ModelConfig(
        activation=name,
        param=act.default_param,
        init=act.init,
        dropout=0.05 if act.alpha_dropout else 0.25,
        alpha_dropout=act.alpha_dropout,
    )


def test_config_for_param_override_reaches_every_site():
    model = build("leaky_relu", param=0.3)
    assert model.config.param == 0.3
    for site in ACT_LAYERS:
        assert getattr(model, site).negative_slope == 0.3


def test_config_for_param_override_elu():
    model = build("elu", param=0.5)
    assert all(getattr(model, site).alpha == 0.5 for site in ACT_LAYERS)


@pytest.mark.parametrize("init", ["he", "lecun", "glorot", "default"])
def test_config_for_init_override(init):
    assert config_for(ACTIVATIONS["tanh"], init=init).init == init


def test_config_for_init_override_changes_weights():
    model = build("tanh", init="he")
    assert weight_std(model, "fc1") == pytest.approx(math.sqrt(2 / FAN_IN["fc1"]), rel=0.05)


@pytest.mark.parametrize("init", ["xavier", "He", ""])
def test_config_for_rejects_unknown_init(init):
    with pytest.raises(UsageError, match="--init"):
        config_for(ACTIVATIONS["relu"], init=init)


# --- determinism -----------------------------------------------------------


@pytest.mark.parametrize("name", ["relu", "prelu", "selu", "tanh"])
def test_same_seed_same_weights(name):
    first, second = build(name, seed=7).state_dict(), build(name, seed=7).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_different_seed_different_weights():
    assert not torch.equal(build("relu", seed=1).fc1.weight, build("relu", seed=2).fc1.weight)


def assert_same_weights(a: SeedCNN, b: SeedCNN) -> None:
    for name, layer in a.weight_layers().items():
        other = b.weight_layers()[name]
        assert torch.equal(layer.weight, other.weight)
        assert torch.equal(layer.bias, other.bias)


# --- the trainer's fast paths: same function, same distribution ---------------------------------


def test_byte_dropout_keeps_three_quarters_and_rescales():
    from actprof.model import ByteDropout

    torch.manual_seed(0)
    drop = ByteDropout(0.25).train()
    x = torch.ones(200, 32, 13, 13).contiguous(memory_format=torch.channels_last)
    y = drop(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.75) < 0.005
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.75))
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(drop.eval()(x), x)


def test_byte_dropout_masks_are_independent_of_layout_position():
    from actprof.model import ByteDropout

    torch.manual_seed(1)
    y = ByteDropout(0.25).train()(torch.ones(4000, 3, 2, 2).contiguous(memory_format=torch.channels_last))
    per_channel = (y != 0).float().mean(dim=(0, 2, 3))
    assert torch.all((per_channel - 0.75).abs() < 0.02), per_channel


def test_byte_dropout_refuses_probabilities_it_cannot_draw_exactly():
    from actprof.model import ByteDropout, dropout_layer

    with pytest.raises(ValueError):
        ByteDropout(0.3)
    assert isinstance(dropout_layer(0.3, alpha=False), nn.Dropout)
    assert isinstance(dropout_layer(0.3, alpha=True), nn.AlphaDropout)


def test_byte_alpha_dropout_keeps_selu_moments():
    from actprof.model import ByteDropout

    torch.manual_seed(0)
    x = torch.randn(400_000, dtype=torch.float64)
    y = ByteDropout(0.25, alpha=True).train()(x)
    reference = nn.functional.alpha_dropout(x, 0.25, training=True)
    assert abs(y.mean().item() - reference.mean().item()) < 0.01
    assert abs(y.std().item() - reference.std().item()) < 0.01
    assert abs(y.mean().item()) < 0.01 and abs(y.std().item() - 1) < 0.01


@pytest.mark.parametrize("name", ["relu", "elu", "selu", "sigmoid", "tanh", "leaky_relu", "celu", "softplus"])
def test_pool_first_order_computes_the_same_function(name):
    torch.manual_seed(0)
    model = SeedCNN(config_for(ACTIVATIONS[name])).eval()
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        canonical = model(x)
        model.pool_first = True
        reordered = model(x)
    assert torch.equal(canonical, reordered)
