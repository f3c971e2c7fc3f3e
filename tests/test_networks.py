"""Networks beyond the two CNNs (``--model mlp:…`` and ``FILE.py:FUNCTION``) and the optimizer knobs: parsed,
refused in one line, trained, exported with parity, and named in every record."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from actprof import activations, api
from actprof.errors import UsageError
from actprof.settings.networks import MAX_DEPTH, NetworkSpec, describe
from actprof.settings.training import ModelConfig, TrainConfig, optimizer_words
from actprof.training.model import build, config_for
from actprof.training.stacks import plain_network
from tests.helpers import FAST, assert_user_error, run_cli, train_and_export

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_network.py"
BAD_NETWORKS = """
from torch import nn
def no_args():
    return nn.Linear(1, 1)
def wrong_shape(act):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 5), act())
def no_act(act):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
def takes_rgb(act):
    return nn.Sequential(nn.Conv2d(3, 4, 3), act(), nn.Flatten(), nn.LazyLinear(10))
def not_a_module(act):
    return "resnet"
class DataDependent(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.fc, self.act = nn.Linear(784, 10), act()
    def forward(self, x):
        y = self.act(self.fc(x.flatten(1)))
        return y * 2 if float(y.sum()) > 1e9 else y
def data_dependent(act):
    return DataDependent(act)
def hidden_act(act):
    acts = [act()]
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
def raises(act):
    return nn.Sequential(act(inplace=True))
"""


# --- the spec ------------------------------------------------------------------------------------


@given(st.integers(1, MAX_DEPTH), st.integers(1, 512))
def test_depth_x_width_round_trips(depth, width):
    spec = NetworkSpec.parse(f"mlp:{depth}x{width}")
    assert spec.widths == (width,) * depth
    assert NetworkSpec.parse(spec.text) == spec
    assert ":" not in spec.slug and "/" not in spec.slug


@given(st.lists(st.integers(1, 4096), min_size=1, max_size=12))
def test_explicit_widths_round_trip(widths):
    spec = NetworkSpec.parse("mlp:" + "-".join(map(str, widths)))
    assert spec.widths == tuple(widths)
    assert NetworkSpec.parse(spec.text) == spec


@given(st.text(max_size=20))
def test_any_text_parses_or_is_refused_in_one_line(text):
    try:
        spec = NetworkSpec.parse(text)
    except UsageError as error:
        assert "\n" not in str(error) and "--model" in str(error)
    else:
        assert spec.kind in ("seed", "deep", "mlp", "file")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mlp:0x128", "the depth must be from 1 to 200"),
        ("mlp:8xabc", "unknown --model 'mlp:8xabc'"),
        ("mlp:8x0", "widths must be from 1"),
        ("mlp:200x65536", "weights, over the 200,000,000 actprof trains"),
        ("mlp:", "unknown --model 'mlp:'"),
        ("resnet", "unknown --model 'resnet'"),
        ("net.py:2fast", "is not a Python function name"),
    ],
)
def test_malformed_specs_are_refused(spec, message):
    with pytest.raises(UsageError, match=message):
        NetworkSpec.parse(spec)


def test_describe_names_depth_width_and_batch_norm():
    expected = "MLP mlp:8x128 (8×128 hidden layers, batch norm, 8 activation sites)"
    assert describe("mlp:8x128", batch_norm=True) == expected
    assert describe("mlp:512-256") == "MLP mlp:512-256 (512-256 hidden layers, 2 activation sites)"
    assert describe("seed").startswith("seed CNN")


# --- MLPs --------------------------------------------------------------------------------------


def test_mlp_layers_in_order_with_batch_norm_and_alpha_dropout():
    config = ModelConfig("selu", None, "lecun", dropout=0.05, alpha_dropout=True, architecture="mlp:3x32",
                         batch_norm=True)  # fmt: skip
    model = build(config)
    names = [name for name, _ in model.named_children()]
    assert names[:6] == ["flatten", "fc1", "bn1", "act1", "drop1", "fc2"] and names[-1] == "out"
    assert model.ACT_LAYERS == ("act1", "act2", "act3")
    assert model(torch.rand(4, 1, 28, 28)).shape == (4, 10)
    fan_in_std = float(model.fc2.weight.detach().std())
    assert math.isclose(fan_in_std, 1 / math.sqrt(32), rel_tol=0.25)  # LeCun normal


def test_plain_mlp_is_the_same_function_with_torch_dropout():
    config = ModelConfig("gelu", None, "he", dropout=0.25, architecture="mlp:2x64", standardize=True)
    torch.manual_seed(0)
    fast = build(config).eval()
    torch.manual_seed(0)
    plain = plain_network(config).eval()
    assert isinstance(plain.drop1, torch.nn.Dropout)
    x = torch.rand(8, 1, 28, 28)
    torch.testing.assert_close(fast(x), plain(x))


def test_knobs_that_do_not_apply_are_refused():
    with pytest.raises(UsageError, match="--batch-norm applies to mlp"):
        ModelConfig("relu", None, "he", architecture="seed", batch_norm=True)
    with pytest.raises(UsageError, match="--standardize applies to mlp"):
        ModelConfig("relu", None, "he", architecture="deep", standardize=True)


# --- optimizers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "rmsprop"}, "unknown --optimizer 'rmsprop'"),
        ({"optimizer": "sgd", "momentum": 1.0}, r"--momentum must be in \[0, 1\)"),
        ({"optimizer": "sgd", "momentum": -0.1}, r"--momentum must be in \[0, 1\)"),
        ({"optimizer": "sgd", "momentum": math.nan}, r"--momentum must be in \[0, 1\)"),
        ({"momentum": 0.9}, "--momentum applies to --optimizer sgd"),
        ({"optimizer": "sgd", "nesterov": True}, "--nesterov needs"),
    ],
)
def test_bad_optimizer_settings(kwargs, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(**kwargs)


def test_optimizer_words():
    assert optimizer_words(TrainConfig()) == "Adam"
    assert optimizer_words(TrainConfig(optimizer="sgd", momentum=0.9, nesterov=True)) == "SGD momentum 0.9 (Nesterov)"


def test_mlp_trains_with_sgd_exports_with_parity_and_names_itself(sample, tmp_path):
    train = replace(FAST, optimizer="sgd", momentum=0.9, nesterov=True, lr=0.01, batch_size=64)
    recipe = api.Recipe(architecture="mlp:8x128", batch_norm=True)
    record = train_and_export(activations.get("elu"), train, sample, tmp_path, recipe=recipe)
    network = record.train.network
    assert network.spec == "mlp:8x128" and network.activation_sites == 8
    assert network.parameters == 784 * 128 + 128 + 7 * (128 * 128 + 128) + 8 * 2 * 128 + 128 * 10 + 10
    assert record.export.parity.argmax_agree and record.export.parity.max_abs_diff < 1e-4
    assert record.train.config.optimizer == "sgd" and record.train.trainer.optimizer == "SGD momentum 0.9 (Nesterov)"
    assert not record.train.trainer.kernels and not record.train.trainer.pool_first  # no fast path applies
    assert record.train.test_accuracy > 0.5
    assert (tmp_path / "runs" / "elu-mlp-8x128-lr0.01-s0.json").is_file()


# --- a user's own network ------------------------------------------------------------------------


def test_user_network_trains_exports_and_reports(sample, tmp_path):
    recipe = api.Recipe(architecture=f"{EXAMPLE}:small_cnn")
    record = train_and_export(activations.get("gelu"), FAST, sample, tmp_path, recipe=recipe)
    assert record.train.network.activation_sites == 2
    assert record.train.network.words == f"your network {EXAMPLE}:small_cnn"
    assert record.export.parity.argmax_agree
    assert [s.layer for s in record.train.layer_stats] == ["2", "6"]  # the modules act() made, by name


def test_user_network_absorbing_kwargs_is_built():
    config = config_for(activations.get("relu"), api.Recipe(architecture=f"{EXAMPLE}:wide_mlp"))
    model = build(config)
    assert model.ACT_LAYERS == ("2",) and model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("missing", "has no function 'missing'"),
        ("no_args", "cannot be called as no_args(act"),
        ("wrong_shape", "to (2, 5), not (2, 10)"),
        ("no_act", "no module made by the activation factory runs in the network"),
        ("takes_rgb", "does not take N×1×28×28 images"),
        ("not_a_module", "returned str, not an nn.Module"),
        ("data_dependent", "the dynamo exporter cannot export this network to ONNX (GuardOnDataDependentSymNode"),
        ("hidden_act", "not a submodule of the network"),
        ("raises", "raises(act, …) failed: TypeError"),
    ],
)
def test_bad_user_networks_are_one_line_exit_2(tmp_path, function, message):
    (tmp_path / "nets.py").write_text(BAD_NETWORKS)
    result = run_cli(
        "train-export", "--act", "relu", "--model", f"nets.py:{function}", "--dataset", "sample", "--out", "m",
        cwd=tmp_path,
    )  # fmt: skip
    assert_user_error(result, code=2, contains=message)
    assert not (tmp_path / "m").exists()


USUAL_CNN = """
from torch import nn
class Net(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.conv, self.act, self.fc = nn.Conv2d(1, 4, 3), act(), nn.Linear(4 * 26 * 26, 10)
    def forward(self, x):
        x = self.act(self.conv(x))
        return self.fc(self.act(x.view(x.size(0), -1)))  # one module, two sites; .view needs NCHW
def net(act, num_classes):
    return Net(act)
"""


def test_a_network_written_the_usual_way_trains_and_counts_a_reused_module_twice(sample, tmp_path):
    source = tmp_path / "usual.py"
    source.write_text(USUAL_CNN)
    recipe = api.Recipe(architecture=f"{source}:net")
    record = train_and_export(activations.get("elu"), FAST, sample, tmp_path / "m", recipe=recipe)
    assert record.train.network.activation_sites == 2 and not record.export.decomposed
    assert record.export.activation_census == {"Elu": 2}
    assert not record.train.trainer.channels_last
    digest = record.train.model.source_sha256
    source.write_text(USUAL_CNN + "\n# edited\n")  # another file is another network: trained again
    again = train_and_export(activations.get("elu"), FAST, sample, tmp_path / "m", recipe=recipe)
    assert again.train.model.source_sha256 != digest


def test_an_edited_network_file_is_not_priced_or_exported_as_the_trained_one(tmp_path):
    source = tmp_path / "usual.py"
    source.write_text(USUAL_CNN)
    config = config_for(activations.get("elu"), api.Recipe(architecture=f"{source}:net"))
    assert plain_network(config)(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    source.write_text(USUAL_CNN.replace("nn.Conv2d(1, 4, 3)", "nn.Conv2d(1, 4, 3, bias=False)"))
    for make in (plain_network, build):  # step-time's network, export's network
        with pytest.raises(UsageError, match="changed since these models were trained"):
            make(config)


def test_missing_user_file_is_refused(tmp_path):
    result = run_cli("train-export", "--model", "nowhere.py:net", "--dataset", "sample", "--out", str(tmp_path / "m"))
    assert_user_error(result, code=2, contains="no file nowhere.py")


@pytest.mark.slow
def test_run_on_mlp_with_sgd_reports_like_the_seed_cnn(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "my_network.py")
    result = run_cli(
        "run", "--act", "relu,elu", "--model", "mlp:8x128", "--optimizer", "sgd", "--lr", "0.01", "--batch-size",
        "64", "--dataset", "sample", "--provider", "cpu", "--min-time", "0.05", "--stacks", "eager",
        "--models", "m", "--out", "r", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "r" / "report.md").read_text()
    assert "MLP mlp:8x128 (8×128 hidden layers, 8 activation sites)" in report and "parameters" in report
    assert "elu vs relu" in report


@pytest.mark.slow
def test_run_on_a_user_network_file_profiles_and_reports_like_the_seed_cnn(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "my_network.py")
    result = run_cli(
        "run", "--act", "relu,elu", "--model", "my_network.py:small_cnn", "--dataset", "sample", "--provider", "cpu",
        "--min-time", "0.05", "--stacks", "eager", "--models", "m", "--out", "r", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "r" / "report.md").read_text()
    assert "your network my\\_network.py:small\\_cnn" in report and "parameters" in report  # Markdown-escaped
    assert "elu vs relu" in report and "on eager" in report
    assert (tmp_path / "r" / "profile.json").is_file() and (tmp_path / "r" / "steps.json").is_file()
