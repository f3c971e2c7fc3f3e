"""The deployment matrix: OpenVINO as a second backend, int8 and fp16 models derived from trained ones,
accuracy, agreement and memory per (runtime, precision) cell, and the report built from them.

Every runtime here is real: OpenVINO's CPU plugin (the dev extra installs it), ONNX Runtime's quantizer
in a spawned child, models trained on the bundled MNIST sample.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest

from actprof import runtimes
from actprof.analysis import verdict
from actprof.errors import ProviderUnavailable, QuantizationError, UsageError
from actprof.export import precision
from actprof.graphs.surgery import INPUT_NAME
from actprof.measure import cells, harness, profile, providers
from actprof.report.html import html_page
from actprof.report.markdown import markdown
from actprof.report.profile_tables import deployment_rows
from actprof.runtimes import attribution
from actprof.runtimes.onnxruntime import cpu_session
from actprof.schema import storage
from actprof.schema.profiling import FusionCensus, ProfileRecord
from actprof.settings.profile import SUPPORTED_PRECISIONS, check_precisions
from tests.helpers import assert_user_error, quick_settings, run_cli

openvino = pytest.importorskip("openvino", reason="OpenVINO is in the dev extra; install '.[dev]'")


def model_bytes(trained_models, name: str) -> bytes:
    return (trained_models[0] / f"{name}.onnx").read_bytes()


@pytest.fixture(scope="module")
def ov():
    return runtimes.backend("openvino")


def cpu_has_bf16() -> bool:
    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


# --- OpenVINO as a backend ------------------------------------------------------------------------


def test_openvino_binds_with_the_same_thread_count_as_ort(ov, trained_models):
    status = ov.status()
    assert status.binds and status.compiled, status.reason
    loaded = ov.load(model_bytes(trained_models, "relu"), opt_level="default")
    assert ov.threads(loaded) == runtimes.backend("cpu").threads(None)


def test_openvino_fp32_matches_onnx_runtime_on_real_images(ov, trained_models):
    data = model_bytes(trained_models, "elu")
    x = cells.images(64)
    loaded = ov.load(data, opt_level="default", precision="fp32")
    assert ov.runs_as(loaded, "fp32") == "fp32"  # asked explicitly: never a silent bf16
    got = ov.compute_target(loaded, x).output()
    want = cpu_session(data).run(None, {INPUT_NAME: x})[0]
    assert np.max(np.abs(got - want)) < 1e-4
    assert np.array_equal(got.argmax(1), want.argmax(1))


def test_openvino_target_loads_a_new_batch_in_place(ov, trained_models):
    data = model_bytes(trained_models, "relu")
    first, second = cells.images(16), cells.images(32)[16:]
    target = ov.compute_target(ov.load(data, opt_level="default"), first)
    target.load(second)
    want = cpu_session(data).run(None, {INPUT_NAME: second})[0]
    assert np.max(np.abs(target.output() - want)) < 1e-4


def test_openvino_bf16_is_granted_or_refused_never_silent(ov, trained_models):
    data = model_bytes(trained_models, "relu")
    if not cpu_has_bf16():
        with pytest.raises(ProviderUnavailable, match="bf16"):
            ov.load(data, opt_level="default", precision="bf16")
        return
    loaded = ov.load(data, opt_level="default", precision="bf16")
    assert ov.runs_as(loaded, "bf16") == "bf16"
    x = cells.images(256)
    got = ov.compute_target(loaded, x).output()
    want = cpu_session(data).run(None, {INPUT_NAME: x})[0]
    assert 0 < np.max(np.abs(got - want)) < 0.5  # bf16 really ran: close, not identical
    assert np.mean(got.argmax(1) == want.argmax(1)) > 0.98


def test_openvino_folds_elu_into_its_convolutions(ov, trained_models):
    census = ov.census("elu", model_bytes(trained_models, "elu"), opt_level="default")
    assert census.fused.get("Convolution(Elu)") == 2
    assert census.fused.get("FullyConnected(Elu)") == 1
    assert "Elu" not in census.activation_nodes_left


def test_openvino_leaves_selu_on_its_own(ov, trained_models):
    census = ov.census("selu", model_bytes(trained_models, "selu"), opt_level="default")
    assert census.activation_nodes_left, census  # the measured fact: SELU is not a convolution post-op there
    assert not any("(Selu)" in label for label in census.fused)


def test_openvino_per_layer_profile(ov, trained_models):
    data = model_bytes(trained_models, "relu")
    ops = harness.op_profile(ov, "relu", data, batch=1, opt_level="default", x=cells.images(1))
    by_op = {o.op_type: o for o in ops.ops}
    assert "Convolution" in by_op and by_op["Convolution"].us_per_run > 0
    assert ops.total_us_per_run > 0 and ops.runs >= 20
    assert abs(sum(o.share for o in ops.ops) - 1) < 1e-6


@pytest.mark.parametrize("bad", ["int4", "fp16"])
def test_openvino_refuses_precisions_it_does_not_run(ov, trained_models, bad):
    with pytest.raises(UsageError, match="--precision"):
        ov.load(model_bytes(trained_models, "relu"), opt_level="default", precision=bad)


# --- derived precisions ---------------------------------------------------------------------------


def test_calibration_uses_training_images_only(sample):
    from actprof.data.mnist import to_tensor, validation_split

    images, record = precision.calibration_set(sample.train_images, "sample", count=100)
    assert record.images == len(images) == 100
    assert record.split.startswith("train")
    train_index, val_index = validation_split(len(sample.train_images))
    pool = to_tensor(sample.train_images[train_index]).numpy().reshape(len(train_index), -1)
    held_out = to_tensor(sample.train_images[val_index]).numpy().reshape(len(val_index), -1)
    flat = images.reshape(len(images), -1)
    assert all((pool == row).all(axis=1).any() for row in flat[:20])
    assert not any((held_out == row).all(axis=1).any() for row in flat[:20])
    again, same = precision.calibration_set(sample.train_images, "sample", count=100)
    assert same.sha256 == record.sha256 and np.array_equal(again, images)


@pytest.fixture(scope="module")
def int8_models(trained_models, sample):
    images, _ = precision.calibration_set(sample.train_images, "sample", count=256)
    names = ("relu", "elu")
    return precision.quantize_all({n: model_bytes(trained_models, n) for n in names}, images)


def test_int8_keeps_accuracy_and_folds_relu_but_not_elu(int8_models, trained_models, sample):
    from actprof.data.mnist import to_tensor

    x = to_tensor(sample.test_images).numpy()
    for name, data in int8_models.items():
        ops = {node.op_type for node in onnx.load_from_string(data).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        fp32 = cpu_session(model_bytes(trained_models, name)).run(None, {INPUT_NAME: x})[0]
        int8 = cpu_session(data).run(None, {INPUT_NAME: x})[0]
        assert abs(np.mean(int8.argmax(1) == sample.test_labels) - np.mean(fp32.argmax(1) == sample.test_labels)) < 0.03
    relu_int8 = attribution.activation_counts(onnx.load_from_string(int8_models["relu"]))
    assert relu_int8 == {}  # the quantizer itself dropped every Relu
    census = runtimes.backend("cpu").census("relu", int8_models["relu"], opt_level="all")
    relu = attribution.with_quantization_folding(census, {"Relu": 3}, relu_int8)
    assert relu.fused.get("int8(Relu)") == 3 and "Relu" not in relu.activation_nodes_left
    elu = runtimes.backend("cpu").census("elu", int8_models["elu"], opt_level="all")
    assert elu.qdq_wrapped == {"Elu": 3}  # every site stays fp32 between DequantizeLinear and QuantizeLinear


def test_fp16_keeps_fp32_inputs_and_outputs(trained_models):
    data = precision.to_fp16(model_bytes(trained_models, "elu"))
    proto = onnx.load_from_string(data)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    x = cells.images(256)
    got = cpu_session(data).run(None, {INPUT_NAME: x})[0]
    want = cpu_session(model_bytes(trained_models, "elu")).run(None, {INPUT_NAME: x})[0]
    assert np.mean(got.argmax(1) == want.argmax(1)) > 0.99


def poisoned(data: bytes) -> bytes:
    """A model ONNX Runtime still runs but its quantizer cannot calibrate: the first convolution's weights are
    infinite, so every activation range is NaN."""
    from onnx import numpy_helper

    proto = onnx.load_from_string(data)
    for tensor in proto.graph.initializer:
        if tensor.name.startswith("conv1.weight"):
            tensor.CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(tensor), np.inf), tensor.name))
    return proto.SerializeToString()


def test_a_model_that_fails_to_quantize_is_named(trained_models):
    with pytest.raises(QuantizationError, match="relu: ONNX Runtime's quantizer failed"):
        precision.quantize_all({"relu": poisoned(model_bytes(trained_models, "relu"))}, cells.images(64))


# --- the profile stage over the matrix ------------------------------------------------------------


@pytest.fixture(scope="module")
def matrix(trained_models, sample):
    found = storage.find_models(trained_models[0], ["relu", "elu"])
    precisions = ["fp32", "int8", *(["bf16"] if cpu_has_bf16() else [])]
    settings = replace(quick_settings(["cpu", "openvino"], [1, 8]), precisions=precisions, calibration_images=128)
    fp32 = {record.name: (path.name, path.read_bytes()) for path, record in found}
    deployment = precision.prepare(fp32, precisions, sample, calibration_images=128)
    return profile.run_profile(found, settings, baseline="relu", deployment=deployment)


def test_every_supported_cell_is_measured_and_scored(matrix):
    expected = {
        (m, p, q)
        for m in ("relu", "elu")
        for p in ("cpu", "openvino")
        for q in matrix.settings.precisions
        if q in SUPPORTED_PRECISIONS[p]
    }
    assert {(c.model, c.provider, c.precision) for c in matrix.deployments} == expected
    timed = {(r.model, r.provider, r.precision) for r in matrix.latency if r.variant == "as-trained"}
    assert timed == expected
    for cell in matrix.deployments:
        assert cell.test_images == 2000 and cell.dataset == "sample"
        assert 0.5 < cell.accuracy <= 1 and cell.argmax_agreement > 0.95
        assert cell.runs_as == cell.precision and cell.threads >= 1 and cell.size_bytes > 0
        if cell.precision == "fp32":
            assert cell.argmax_agreement == 1.0 and cell.max_abs_logit_diff < 1e-4
    sizes = {(c.model, c.precision): c.size_bytes for c in matrix.deployments}
    assert sizes[("elu", "int8")] < sizes[("elu", "fp32")] / 3  # int8 weights: a quarter, plus scales


def test_ratios_are_taken_within_a_runtime_and_precision(matrix):
    for r in matrix.latency:
        if r.model == "relu" and r.variant == "as-trained":
            assert r.vs_baseline is not None and r.vs_baseline.value == pytest.approx(1.0)
    assert all(a.precision == "fp32" for a in matrix.ablation)  # swaps are made in the fp32 graph
    assert {(a.provider, a.batch) for a in matrix.ablation} == {(p, b) for p in ("cpu", "openvino") for b in (1, 8)}
    assert matrix.calibration is not None and matrix.calibration.images == 128


def test_the_census_names_each_cell(matrix):
    census = {(f.model, f.provider, f.precision): f for f in matrix.fusion}
    assert census[("elu", "openvino", "fp32")].fused.get("Convolution(Elu)") == 2
    assert census[("relu", "cpu", "int8")].fused.get("int8(Relu)") == 3
    assert census[("elu", "cpu", "int8")].qdq_wrapped == {"Elu": 3}
    assert {f.opt_level for f in matrix.fusion if f.provider == "openvino"} == {"default"}


def test_the_report_leads_each_batch_with_the_matrix(matrix, trained_models):
    models = [r for _, r in storage.find_models(trained_models[0], ["relu", "elu"])]
    built = verdict.build(models, matrix, baseline="relu")
    targets = {(v.provider, v.precision) for v in built.verdicts}
    assert ("cpu", "int8") in targets and ("openvino", "fp32") in targets
    assert any("on cpu int8" in v.summary for v in built.verdicts)
    text = markdown(built, matrix)
    assert "## Deployment matrix, batch 1" in text and "## Deployment matrix, batch 8" in text
    assert "never test images" in text
    rows = deployment_rows(matrix, 1)
    assert [r["activation"] for r in rows] == ["relu", "elu"]
    assert "cpu int8" in rows[0] and "openvino fp32" in rows[0]
    assert rows[0]["cpu int8"].split(" · ")[1] == "baseline"
    assert rows[1]["cheapest within 0.5 pt of fp32"] != "—"
    html = html_page(built, models, matrix)
    assert "Deployment matrix, batch 8" in html


# --- the command line -----------------------------------------------------------------------------


def profile_cli(trained_models, out, *args: str, env: dict[str, str] | None = None):
    return run_cli(
        "profile", "--models", str(trained_models[0]), "--out", str(out), "--act", "relu,elu",
        "--batch-sizes", "1", "--min-time", "0.05", "--min-runs", "5", "--no-ablation", "--dataset", "sample",
        *args, env=env,
    )  # fmt: skip


def test_cli_profiles_the_matrix_and_writes_the_derived_models(trained_models, tmp_path):
    out = tmp_path / "reports"
    result = profile_cli(trained_models, out, "--provider", "cpu,openvino", "--precision", "fp32,int8")
    assert result.returncode == 0, result.stderr
    assert "Deployment matrix, batch 1" in result.stderr
    record = storage.read_json(out / "profile.json", ProfileRecord)
    for cell in record.deployments:
        if cell.precision == "int8":
            written = out / "derived" / cell.file
            assert storage.sha256(written.read_bytes()) == cell.sha256


@pytest.mark.parametrize(
    ("args", "contains"),
    [
        (["--precision", "fp8"], "unknown --precision"),
        (["--precision", "bf16"], "bf16 runs on --provider openvino"),
        (["--provider", "cuda", "--precision", "int8"], "int8 runs on --provider cpu, openvino"),
        (["--provider", "openvino", "--precision", "fp16"], "fp16 runs on --provider cuda"),
        (["--provider", "tpu"], "unknown --provider"),
        (["--calibration-images", "0", "--precision", "int8"], "--calibration-images"),
    ],
)
def test_cli_refuses_bad_precisions_in_one_line(trained_models, tmp_path, args, contains):
    out = tmp_path / "reports"
    assert_user_error(profile_cli(trained_models, out, *args), code=2, contains=contains)
    assert not out.exists()


@pytest.fixture
def without_openvino(tmp_path):
    """An environment where ``import openvino`` fails, as on a machine without the extra."""
    shim = tmp_path / "shim" / "openvino"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('openvino is not installed here')\n")
    return {"PYTHONPATH": str(shim.parent)}


def test_cli_without_openvino_names_the_extra(trained_models, tmp_path, without_openvino):
    out = tmp_path / "reports"
    result = profile_cli(trained_models, out, "--provider", "openvino", env=without_openvino)
    assert_user_error(result, code=2, contains="pip install 'actprof[openvino]'")
    assert not out.exists()


def test_cli_all_skips_a_missing_openvino_and_says_why(trained_models, tmp_path, without_openvino):
    out = tmp_path / "reports"
    result = profile_cli(trained_models, out, "--provider", "all", env=without_openvino)
    assert result.returncode == 0, result.stderr
    assert "skipped openvino" in result.stderr and "actprof[openvino]" in result.stderr
    providers = storage.read_json(out / "profile.json", ProfileRecord).settings.providers
    assert providers == ["cpu", "torch", "inductor", "executorch"]


def test_cli_refuses_a_model_that_fails_to_quantize_leaving_nothing(trained_models, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    data = poisoned(model_bytes(trained_models, "relu"))
    record = trained_models[1]["relu"]
    storage.save_model(
        models, "relu", data, replace(record, export=replace(record.export, sha256=storage.sha256(data)))
    )
    out = tmp_path / "reports"
    result = run_cli(
        "profile", "--models", str(models), "--out", str(out), "--precision", "fp32,int8", "--batch-sizes", "1",
        "--min-time", "0.05", "--min-runs", "5", "--dataset", "sample",
    )  # fmt: skip
    assert_user_error(result, code=2, contains="quantizer failed")
    assert not out.exists()


def test_settings_refuse_unknown_precisions_when_loaded():
    with pytest.raises(UsageError, match="--precision"):
        replace(quick_settings(["cpu"], [1]), precisions=["fp8"])


def test_resolving_the_settings_says_which_cells_are_skipped():
    check_precisions(["cpu", "openvino"], ["fp32", "bf16"])  # openvino runs bf16: nothing to refuse
    said: list[str] = []
    settings = replace(quick_settings(["cpu", "openvino"], [1]), precisions=["fp32", "bf16"])
    resolved = providers.resolve(settings, skip_unbound=False, say=said.append)
    assert said == ["skipped cpu bf16: cpu runs fp32, int8"]
    assert resolved.providers == ["cpu", "openvino"] and resolved.precisions == ["fp32", "bf16"]


def test_a_runtime_rewrite_is_not_mistaken_for_quantization_folding():
    """ORT turns Mish into Softplus/Tanh/Mul at load time: the int8 graph still had Mish, so nothing folded."""
    census = FusionCensus("mish", "cpu", "all", {}, {"Softplus": 3, "Tanh": 3, "Mul": 3}, {}, 0, precision="int8")
    assert attribution.with_quantization_folding(census, {"Mish": 3}, {"Mish": 3}).fused == {}
    assert attribution.with_quantization_folding(census, {"Relu": 3}, {}).fused == {"int8(Relu)": 3}


def test_cli_all_refuses_a_precision_no_provider_runs_here(trained_models, tmp_path, without_openvino):
    """bf16 without OpenVINO leaves PyTorch's autocast, which this CPU would emulate: refused, naming why."""
    if cpu_has_bf16():
        pytest.skip("this CPU runs bf16 natively: PyTorch's bf16 cells run here")
    out = tmp_path / "reports"
    result = profile_cli(trained_models, out, "--provider", "all", "--precision", "bf16", env=without_openvino)
    assert_user_error(result, code=2, contains="--precision bf16 runs on no provider here")
    assert "no native bf16" in result.stderr
    assert not out.exists()
