from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from actprof.activations import ACTIVATIONS
from actprof.errors import UsageError
from actprof.settings.training import ModelConfig
from actprof.training.config import Recipe
from actprof.training.dropout import FastDropout
from actprof.training.kernels.build import library
from actprof.training.model import ACT_LAYERS, SeedCNN, _rows_used, config_for
from actprof.training.model import build as build_network
from actprof.training.networks import weight_layers

CLASSIC_PARAMS = {"conv1": 320, "conv2": 18_496, "fc1": 409_856, "fc2": 2_570}
CLASSIC_TOTAL = 431_242
FAN_IN = {"conv1": 9, "conv2": 288, "fc1": 1600, "fc2": 256}
FAN_OUT = {"conv1": 288, "conv2": 576, "fc1": 256, "fc2": 10}


def build(name: str, seed: int = 0, **recipe) -> SeedCNN:
    torch.manual_seed(seed)
    return SeedCNN(config_for(ACTIVATIONS[name], Recipe(**recipe)))


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def weight_std(model: SeedCNN, layer: str) -> float:
    return float(weight_layers(model)[layer].weight.detach().double().std())


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
    assert {name: count(layer) for name, layer in weight_layers(model).items()} == CLASSIC_PARAMS
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
        weight = weight_layers(model)[layer].weight.detach().abs()
        assert float(weight.max()) <= bound
        assert float(weight.max()) > 0.99 * bound
        assert weight_std(model, layer) == pytest.approx(bound / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_family_init_zeroes_biases(name):
    model = build(name)
    for layer in weight_layers(model).values():
        assert torch.count_nonzero(layer.bias) == 0


def test_default_init_keeps_pytorch_init():
    model = build("relu", init="default")
    assert model.config.init == "default"
    for name, layer in weight_layers(model).items():
        bound = 1 / math.sqrt(FAN_IN[name])
        assert torch.count_nonzero(layer.bias) > 0
        assert float(layer.weight.detach().abs().max()) <= bound
        assert float(layer.bias.detach().abs().max()) <= bound
    assert weight_std(model, "fc1") == pytest.approx(1 / math.sqrt(3 * FAN_IN["fc1"]), rel=0.05)


def test_default_init_matches_plain_pytorch_layers():
    torch.manual_seed(3)
    model = SeedCNN(config_for(ACTIVATIONS["relu"], Recipe(init="default")))
    torch.manual_seed(3)
    conv1 = nn.Conv2d(1, 32, kernel_size=3)
    assert torch.equal(model.conv1.weight, conv1.weight)
    assert torch.equal(model.conv1.bias, conv1.bias)


# --- dropout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_dropout_kind(name):
    model = build(name)
    for layer in (model.drop1, model.drop2):
        if name == "selu":  # alpha dropout at the SELU paper's 0.05: masks from the kernels' generator
            assert type(layer) is FastDropout and layer.alpha and layer.p == 0.05
        else:
            assert type(layer) is FastDropout and not layer.alpha and layer.p == 0.25


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
    assert config_for(ACTIVATIONS["tanh"], Recipe(init=init)).init == init


def test_config_for_init_override_changes_weights():
    model = build("tanh", init="he")
    assert weight_std(model, "fc1") == pytest.approx(math.sqrt(2 / FAN_IN["fc1"]), rel=0.05)


@pytest.mark.parametrize("init", ["xavier", "He", ""])
def test_config_for_rejects_unknown_init(init):
    with pytest.raises(UsageError, match="--init"):
        config_for(ACTIVATIONS["relu"], Recipe(init=init))


# --- determinism -----------------------------------------------------------


@pytest.mark.parametrize("name", ["relu", "prelu", "selu", "tanh"])
def test_same_seed_same_weights(name):
    first, second = build(name, seed=7).state_dict(), build(name, seed=7).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_different_seed_different_weights():
    assert not torch.equal(build("relu", seed=1).fc1.weight, build("relu", seed=2).fc1.weight)


def assert_same_weights(a: SeedCNN, b: SeedCNN) -> None:
    for name, layer in weight_layers(a).items():
        other = weight_layers(b)[name]
        assert torch.equal(layer.weight, other.weight)
        assert torch.equal(layer.bias, other.bias)


# --- the trainer's fast paths: same function, same distribution ---------------------------------


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


# --- the trainer's lean form: only what reaches the loss, channels-last throughout -----------------


def _pair(name: str, architecture: str, seed: int = 0, dropout: float = 0.0):
    """The same network twice: canonical, and in the trainer's form (lean, pool-first where exact)."""
    act = ACTIVATIONS[name]
    torch.manual_seed(seed)
    canonical = build_network(config_for(act, Recipe(dropout=dropout, architecture=architecture)))
    lean = build_network(config_for(act, Recipe(dropout=dropout, architecture=architecture)))
    lean.load_state_dict(canonical.state_dict())
    lean.lean, lean.pool_first = True, act.monotonic
    # Both channels-last, as the trainer runs them: the rewrites are then the only difference.
    return canonical.to(memory_format=torch.channels_last), lean.to(memory_format=torch.channels_last)


LEAN_CASES = [(name, arch) for arch in ("seed", "deep") for name in ("relu", "elu", "gelu", "mish", "prelu")]


@pytest.fixture(params=["kernels", "torch layers"], autouse=False)
def kernels(request, monkeypatch):
    """The lean form both ways: with actprof's C kernels (fused conv1 + pool, max pools) and without."""
    monkeypatch.setenv("ACTPROF_KERNELS", "1" if request.param == "kernels" else "0")
    return request.param


def autograd_nodes(output: torch.Tensor) -> set[str]:
    """The kinds of backward node ``output``'s graph holds."""
    seen, todo = {}, [output.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and id(node) not in seen:
            seen[id(node)] = type(node).__name__
            todo.extend(next_node for next_node, _ in node.next_functions)
    return set(seen.values())


@pytest.mark.skipif(library() is None, reason="no C compiler: the kernels cannot be built")
@pytest.mark.parametrize(
    ("name", "architecture", "expected"),
    [
        ("relu", "seed", {"_ConvPoolBackward", "_MaxPoolBackward"}),  # conv1 + pool1 fused, pool2
        ("gelu", "seed", {"_ConvPoolBackward", "_MaxPoolBackward"}),  # not monotonic: GELU before each pool
        ("mish", "deep", {"_MaxPoolBackward"}),
        ("relu", "deep", {"_MaxPoolBackward"}),
    ],
)
def test_lean_form_on_a_cpu_runs_actprofs_kernels(name, architecture, expected, monkeypatch):
    monkeypatch.setenv("ACTPROF_KERNELS", "1")
    canonical, lean = _pair(name, architecture)
    x = torch.rand(4, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    assert expected <= autograd_nodes(lean.train()(x))
    assert not {"_ConvPoolBackward", "_MaxPoolBackward"} & autograd_nodes(canonical.train()(x))


@pytest.mark.parametrize(("name", "architecture"), LEAN_CASES)
def test_lean_form_gives_the_same_outputs(name, architecture, kernels):
    canonical, lean = _pair(name, architecture)
    x = torch.rand(16, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(lean.eval()(x), canonical.eval()(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "architecture"), LEAN_CASES)
def test_lean_form_gives_the_same_gradients(name, architecture, kernels):
    # Every parameter, including those of the first layers, whose unused outputs the lean form skips:
    # what it leaves out never reached the loss, so no gradient changes.
    canonical, lean = _pair(name, architecture)
    x = torch.rand(32, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,))
    for model in (canonical, lean):
        nn.functional.cross_entropy(model.train()(x), y).backward()
    # fc1's columns are summed in another order: fp32 rounding, relative to the largest gradient. The kernels
    # compute the activations that come before a pool with their own formulas, an ulp or so from torch's.
    # Near a minimum (Mish's at -1.19 is flat) two inputs of a window give outputs an ulp apart, and the
    # window can be decided the other way: the gradient then reaches another pixel (~1e-3 here, in the deep
    # CNN's every layer below that pool). test_fused pins those formulas down against fp64.
    # PReLU's slope is one sum over the whole batch that mostly cancels: relative to the model's largest.
    own_formulas = kernels == "kernels" and not ACTIVATIONS[name].monotonic
    largest = max(float(p.grad.abs().max()) for p in canonical.parameters())
    for (label, expected), got in zip(canonical.named_parameters(), lean.parameters(), strict=True):
        scale = expected.grad.abs().max() if expected.numel() > 1 else largest
        error = (got.grad - expected.grad).abs().max() / scale
        assert error < (1e-2 if own_formulas else 1e-5), (label, float(error))


DROPOUT_CASES = [("relu", "seed"), ("elu", "seed"), ("gelu", "seed"), ("elu", "deep")]


@pytest.mark.skipif(library() is None, reason="no C compiler: the kernels cannot be built")
@pytest.mark.parametrize(("name", "architecture"), DROPOUT_CASES)
def test_kernels_drop_the_same_units_as_torchs_layers(name, architecture, monkeypatch):
    # Dropout on, one seed for both: the kernels decide from the same random words as FastDropout, so
    # the lean form trains on the same masks, and the same gradients, with or without them.
    _, lean = _pair(name, architecture, dropout=0.25)
    x = torch.rand(32, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,))
    outputs, grads = [], []
    for kernels in ("0", "1"):
        monkeypatch.setenv("ACTPROF_KERNELS", kernels)
        lean.zero_grad()
        torch.manual_seed(1)
        outputs.append(lean.train()(x))
        nn.functional.cross_entropy(outputs[-1], y).backward()
        grads.append([p.grad.clone() for p in lean.parameters()])
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    for (label, _), expected, got in zip(lean.named_parameters(), *grads, strict=True):
        error = (got - expected).abs().max() / expected.abs().max()
        assert error < 1e-5, (label, float(error))


@pytest.mark.parametrize("architecture", ["seed", "deep"])
def test_lean_form_under_bf16_autocast_stays_within_bf16_rounding(architecture, kernels):
    # The images staged as bf16 are what autocast would cast them to: the same bf16 forward either way.
    canonical, lean = _pair("elu", architecture)
    x = torch.rand(64, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = canonical.eval()(x).float()
        got = lean.eval()(x.to(torch.bfloat16)).float()
    assert (got - expected).abs().max() < 0.01 * expected.abs().max()


@pytest.mark.parametrize("architecture", ["seed", "deep"])
def test_lean_form_under_bf16_autocast_trains_on_the_same_gradients(architecture, kernels):
    # What the trainer does each step: bf16 autocast, images staged as bf16, dropout off here.
    canonical, lean = _pair("elu", architecture)
    x = torch.rand(64, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (64,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nn.functional.cross_entropy(canonical.train()(x).float(), y).backward()
        nn.functional.cross_entropy(lean.train()(x.to(torch.bfloat16)).float(), y).backward()
    for (label, expected), got in zip(canonical.named_parameters(), lean.parameters(), strict=True):
        error = (got.grad - expected.grad).abs().max() / expected.grad.abs().max()
        assert error < 0.03, (label, float(error))


def test_lean_form_reads_only_the_rows_that_reach_the_output(kernels):
    canonical, lean = _pair("relu", "seed")
    x = torch.rand(4, 1, 28, 28)
    changed = x.clone()
    changed[:, :, _rows_used(28) :, :] = 1e6  # rows 26 and 27: floored away by the second pool
    changed[:, :, :, _rows_used(28) :] = -1e6
    with torch.no_grad():
        assert torch.equal(canonical.eval()(x), canonical(changed))
        assert torch.equal(lean.eval()(x), lean(changed))
