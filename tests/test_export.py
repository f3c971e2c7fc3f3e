from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from actprof import activations
from actprof.data.mnist import to_tensor
from actprof.errors import ModelFileError, ParityError, SweepFailed
from actprof.export import exporter, store, verify
from actprof.export.config import DEFAULT_OPSET
from actprof.graphs.files import load_model_file
from actprof.runtimes.onnxruntime import cpu_session
from actprof.runtimes.reference import run_batches
from actprof.schema import SCHEMA_VERSION, storage
from actprof.schema.storage import read_json
from actprof.schema.training import ModelRecord
from actprof.settings.training import TrainConfig
from actprof.training.loop import staged, train
from actprof.training.model import build, config_for
from tests.helpers import (
    FAST,
    assert_user_error,
    plain_ort_session,
    point_weights_outside,
    run_cli,
    train_and_export,
    with_external_weights,
)

ALL = list(activations.ACTIVATIONS)


@pytest.mark.parametrize("name", ALL)
def test_every_activation_exports_and_matches_pytorch(trained_models, name):
    out, records = trained_models
    record = records[name]
    assert record.export.parity.max_abs_diff <= 1e-4
    assert record.export.parity.argmax_agree
    assert record.export.parity.images >= 256
    model = onnx.load(str(out / f"{name}.onnx"))
    onnx.checker.check_model(model, full_check=True)
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param, "the batch dimension must be dynamic"
    assert record.export.opset == 20
    assert record.export.exporter == "dynamo"


@pytest.mark.parametrize("name", ALL)
def test_census_holds_the_expected_activation_op(trained_models, name):
    record = trained_models[1][name]
    act = activations.get(name)
    for op in act.onnx_ops:
        assert record.export.activation_census.get(op, 0) >= 3, record.export.census
    assert record.export.census["Conv"] == 2
    assert record.export.census["MaxPool"] == 2


def test_decomposition_is_flagged(trained_models):
    records = trained_models[1]
    single = ["relu", "elu", "selu", "gelu", "gelu_tanh", "sigmoid", "tanh", "mish", "hardswish"]
    assert not any(records[n].export.decomposed for n in single)
    assert records["silu"].export.decomposed is False  # Sigmoid + Mul is its expected form
    assert records["softplus"].export.decomposed  # dynamo adds Greater + Where for the threshold


@pytest.mark.parametrize("name", ["relu", "elu", "selu"])
def test_records_load_back_and_match_the_onnx_file(trained_models, name):
    out, records = trained_models
    loaded = read_json(out / f"{name}.json", ModelRecord)
    assert loaded == records[name]
    assert loaded.schema_version == SCHEMA_VERSION
    assert hashlib.sha256((out / f"{name}.onnx").read_bytes()).hexdigest() == loaded.export.sha256
    assert loaded.dataset.kind == "sample"
    assert loaded.activation.init == activations.get(name).init


def test_record_contents_are_complete(trained_models):
    record = trained_models[1]["elu"]
    train = record.train
    assert len(train.step_loss) == len(train.step_accuracy) == train.steps
    assert [p.step for p in train.validation] == sorted(p.step for p in train.validation)
    assert train.validation[-1].step == train.steps
    assert [t.target for t in train.time_to_accuracy] == [0.90, 0.95, 0.97, 0.98, 0.99]
    assert [s.layer for s in train.layer_stats] == ["act1", "act2", "act3"]
    assert all(0 <= s.dead_fraction <= 1 for s in train.layer_stats)
    assert set(train.validation[-1].grad_norms) == {"conv1", "conv2", "fc1", "fc2"}
    assert train.images_per_second > 0
    assert 0.5 < train.test_accuracy <= 1  # learned something even on the sample
    assert record.environment.versions["torch"].startswith("2.")


def test_onnx_accuracy_is_measured_independently_in_ort(trained_models, sample):
    out, records = trained_models
    session = plain_ort_session(str(out / "relu.onnx"))
    logits = session.run(None, {"input": to_tensor(sample.test_images).numpy()})[0]
    accuracy = float(np.mean(logits.argmax(1) == sample.test_labels))
    assert accuracy == pytest.approx(records["relu"].export.onnx_test_accuracy)
    assert accuracy == pytest.approx(records["relu"].train.test_accuracy, abs=0.002)


def test_relu_units_die_and_elu_units_do_not(trained_models):
    records = trained_models[1]
    assert records["relu"].train.layer_stats[2].dead_fraction > records["elu"].train.layer_stats[2].dead_fraction


def test_parity_failure_is_an_error(trained_models, sample):
    out, _ = trained_models
    session = cpu_session((out / "relu.onnx").read_bytes())
    x = to_tensor(sample.test_images[:300]).numpy()
    logits = run_batches(session, x)
    verify.check_parity(session, logits, x)
    with pytest.raises(ParityError, match="differs from PyTorch"):
        verify.check_parity(session, logits + 1e-3, x)
    # export_and_verify compares the rows of its accuracy pass that are the probe's, without a second pass
    assert verify.parity_of(logits, logits.copy()).images == len(x)
    with pytest.raises(ParityError, match="differs from PyTorch"):
        verify.parity_of(logits, logits + 1e-3)


def test_nan_loss_stops_the_run_and_writes_nothing(tmp_path, sample):
    act = activations.get("relu")
    diverging = TrainConfig(epochs=1, lr=1e8, val_every=5, val_size=200, precision="fp32")
    with pytest.raises(SweepFailed, match="lower --lr"):
        train_and_export(act, diverging, sample, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]  # no model: only the divergence is recorded
    [record] = (tmp_path / "runs").iterdir()
    assert record.suffix == ".json" and json.loads(record.read_text())["kind"] == "diverged"


def test_same_seed_gives_a_bit_identical_model(tmp_path, sample):
    act = activations.get("elu")
    a = train_and_export(act, FAST, sample, tmp_path / "a")
    b = train_and_export(act, FAST, sample, tmp_path / "b")
    assert a.export.sha256 == b.export.sha256
    assert a.train.step_loss == b.train.step_loss


def test_older_opset_decomposes_gelu(tmp_path, sample):
    act = activations.get("gelu")
    model, _ = train(config_for(act), TrainConfig(epochs=1, val_every=100, val_size=100), sample)
    _, result = verify.export_and_verify(
        model,
        expected_ops=act.onnx_ops,
        test_images=to_tensor(sample.test_images).numpy(),
        test_labels=sample.test_labels,
        opset=18,
    )
    assert "Gelu" not in result.census
    assert "Erf" in result.activation_census
    assert result.decomposed


def test_find_models_detects_a_mismatched_onnx(tmp_path, trained_models):
    out, _ = trained_models
    for suffix in (".onnx", ".json"):
        (tmp_path / f"elu{suffix}").write_bytes((out / f"elu{suffix}").read_bytes())
    assert [r.activation.name for _, r in storage.find_models(tmp_path)] == ["elu"]
    (tmp_path / "elu.onnx").write_bytes((out / "relu.onnx").read_bytes())
    with pytest.raises(ModelFileError, match="does not match"):
        storage.find_models(tmp_path)


def test_load_model_file_refuses_external_data_outside_its_directory(tmp_path, trained_models):
    out, _ = trained_models
    path = with_external_weights(out / "relu.onnx", tmp_path / "inner")
    assert load_model_file(path).graph.node
    point_weights_outside(path)
    with pytest.raises(ModelFileError, match="outside its directory"):
        load_model_file(path)


def test_cli_train_export_writes_both_files(tmp_path):
    result = run_cli("train-export", "--act", "elu", "--dataset", "sample", "--val-every", "10", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "bundled sample" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elu.json", "elu.onnx", "runs"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "elu-seed-lr0.001-s0.json",
        "elu-seed-lr0.001-s0.onnx",
    ]
    assert json.loads((tmp_path / "elu.json").read_text())["activation"]["name"] == "elu"


def test_cli_bad_data_dir_exits_2_and_never_falls_back(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("train-export", "--act", "relu", "--data-dir", str(empty), "--out", str(tmp_path / "out"))
    assert_user_error(result, code=2, contains=str(empty))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_elu_on_full_mnist_reaches_96_percent_in_ort(tmp_path, full_mnist_dir):
    result = run_cli("train-export", "--act", "elu", "--data-dir", str(full_mnist_dir), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    record = read_json(tmp_path / "elu.json", ModelRecord)
    assert record.dataset.kind == "full" and record.dataset.n_test == 10_000
    # Checked independently: the ONNX file itself, in ONNX Runtime, on the 10,000 test images.
    from actprof.data.mnist import load_mnist

    mnist = load_mnist(data_dir=full_mnist_dir, log=lambda _m: None)
    session = plain_ort_session(str(tmp_path / "elu.onnx"))
    logits = run_batches(session, to_tensor(mnist.test_images).numpy())
    assert float(np.mean(logits.argmax(1) == mnist.test_labels)) >= 0.96


def _perturbed(name: str, seed: int):
    """A network with every parameter non-zero and distinct per seed, as after training."""
    import torch

    torch.manual_seed(seed)
    model = build(config_for(activations.get(name))).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    return model


@pytest.fixture
def exports(monkeypatch, tmp_path) -> list[int]:
    """Counts the fresh exports, with no graph kept from before: none in this process, none in the store."""
    counted: list[int] = []
    fresh_export = exporter.to_onnx
    monkeypatch.setattr(store, "to_onnx", lambda *a, **k: counted.append(1) or fresh_export(*a, **k))
    monkeypatch.setattr(store, "_TEMPLATES", {})
    monkeypatch.setattr(store, "_graphs_dir", lambda: tmp_path / "graphs")
    return counted


def _reuse_or_export(model):
    return store.reuse_or_export(model, opset=DEFAULT_OPSET, exporter="dynamo")


@pytest.mark.parametrize("name", ["elu", "gelu", "selu"])
def test_later_runs_of_a_sweep_reuse_the_export_and_get_a_fresh_exports_bytes(exports, name):
    _reuse_or_export(_perturbed(name, 0))
    reused = _reuse_or_export(_perturbed(name, 1))
    assert len(exports) == 1
    assert reused.SerializeToString() == exporter.to_onnx(_perturbed(name, 1)).SerializeToString()


def test_a_later_process_reuses_the_stored_graph_and_gets_a_fresh_exports_bytes(exports, monkeypatch):
    _reuse_or_export(_perturbed("gelu", 0))
    (stored,) = store._graphs_dir().iterdir()
    assert stored.stat().st_size < 20_000  # the graph without its weights (the seed CNN's are ~0.9 MB)
    monkeypatch.setattr(store, "_TEMPLATES", {})  # as in a new process
    reused = _reuse_or_export(_perturbed("gelu", 1))
    assert len(exports) == 1
    assert reused.SerializeToString() == exporter.to_onnx(_perturbed("gelu", 1)).SerializeToString()


def test_a_damaged_stored_graph_is_exported_afresh_and_replaced(exports, monkeypatch):
    model = _perturbed("elu", 0)
    _reuse_or_export(model)
    (stored,) = store._graphs_dir().iterdir()
    stored.write_bytes(stored.read_bytes()[:100])
    monkeypatch.setattr(store, "_TEMPLATES", {})
    again = _reuse_or_export(model)
    assert len(exports) == 2 and stored.stat().st_size > 100
    assert again.SerializeToString() == exporter.to_onnx(model).SerializeToString()


def test_the_store_keeps_only_the_newest_graphs(exports, monkeypatch):
    monkeypatch.setattr(store, "KEPT_GRAPHS", 2)
    for name in ("relu", "elu", "gelu"):
        _reuse_or_export(_perturbed(name, 0))
    assert sorted(p.name.split("-")[0] for p in store._graphs_dir().iterdir()) == ["elu", "gelu"]


def test_the_store_moves_where_actprof_graph_dir_says(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTPROF_GRAPH_DIR", str(tmp_path))
    assert store._graphs_dir() == tmp_path
    monkeypatch.delenv("ACTPROF_GRAPH_DIR")
    assert store._graphs_dir().parts[-2:] == ("actprof", "onnx-graphs")


def test_graphs_are_stored_under_everything_that_decides_them():
    relu, elu = config_for(activations.get("relu")), config_for(activations.get("elu"))
    paths = {
        store.template_path((config, lean, False, opset, "dynamo"))
        for config in (relu, elu)
        for lean in (False, True)
        for opset in (18, 20)
    }
    assert len(paths) == 8
    assert store.template_path((relu, False, False, 20, "dynamo")) == store.template_path(
        (config_for(activations.get("relu")), False, False, 20, "dynamo")
    )


def test_a_graph_that_folded_a_parameter_is_exported_afresh(exports):
    # PReLU's slope is exported reshaped for broadcasting: not an initializer of its own shape, so no reuse.
    for seed in (0, 1):
        _reuse_or_export(_perturbed("prelu", seed))
    assert len(exports) == 2


def test_staged_data_is_reused_until_the_split_or_precision_changes(sample):
    import torch

    cpu = torch.device("cpu")
    first = staged(sample, 0.1, cpu, torch.bfloat16)
    assert all(a is b for a, b in zip(first, staged(sample, 0.1, cpu, torch.bfloat16), strict=True))
    fp32 = staged(sample, 0.1, cpu, torch.float32)
    assert fp32[0].dtype == torch.float32 and torch.equal(fp32[0].to(torch.bfloat16), first[0])
    assert len(staged(sample, 0.2, cpu, torch.float32)[2]) != len(fp32[2])  # another validation split


def test_exports_share_one_torchlib_registry_and_give_the_same_graphs(monkeypatch):
    from torch.onnx._internal.exporter import _registration

    original = _registration.ONNXRegistry.__dict__["from_torchlib"]
    monkeypatch.setattr(exporter, "_REGISTRIES", {})
    exporter.to_onnx(_perturbed("relu", 0))
    after_another = exporter.to_onnx(_perturbed("gelu", 0))  # with the registry relu's export built
    assert len(exporter._REGISTRIES) == 1
    with exporter.torchlib_registry_reused():
        assert _registration.ONNXRegistry.from_torchlib() is _registration.ONNXRegistry.from_torchlib()
    assert _registration.ONNXRegistry.__dict__["from_torchlib"] is original  # put back

    monkeypatch.setattr(exporter, "_REGISTRIES", {})
    fresh = exporter.to_onnx(_perturbed("gelu", 0))
    assert after_another.SerializeToString() == fresh.SerializeToString()


def test_an_exported_file_carries_no_source_path():
    """The dynamo exporter writes each node's Python stack trace (absolute paths, line numbers) into its
    metadata: dropped, so that a shipped model does not reveal where it was exported, and the same network
    gives the same bytes from any checkout. Which module each node came from stays."""
    import actprof

    model = build(config_for(activations.get("elu"))).eval()
    proto = exporter.to_onnx(model, opset=20, exporter="dynamo")
    where = str(Path(actprof.__file__).resolve().parent)
    metadata = [(p.key, p.value) for node in proto.graph.node for p in node.metadata_props]
    assert metadata and not any(key == exporter.STACK_TRACE for key, _ in metadata)
    assert not any(where in value for _, value in metadata)
    assert any(key == "pkg.torch.onnx.class_hierarchy" for key, _ in metadata)
