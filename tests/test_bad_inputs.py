"""Every user error, across every command: the documented exit code, one line naming the fix, no
traceback, and no output file."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from actprof.cli.main import main
from actprof.data.idx import write_idx
from actprof.data.mnist import STEMS
from actprof.runtimes.onnxruntime import provider_status
from tests.helpers import point_weights_outside, with_external_weights


def invoke(capsys, monkeypatch, *args: str) -> tuple[int, str]:
    """Run ``actprof ARGS`` in this process (fast) exactly as the console script does."""
    monkeypatch.setattr(sys, "argv", ["actprof", *args])
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # a Ctrl-C from here on changes no exit code
    finally:
        signal.signal(signal.SIGINT, handler)  # main() ends the process; this test process goes on
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out + captured.err


def assert_one_line_error(code: int, output: str, *, expected_code: int, contains: str) -> None:
    assert code == expected_code, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("actprof: error:")]
    assert len(errors) == 1, output
    assert contains.lower() in errors[0].lower(), errors[0]


def mnist_dir(root: Path, *, images: int = 20, labels: int = 20, label_max: int = 9) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_idx(root / f"{STEMS[0]}.gz", rng.integers(0, 255, (images, 28, 28), dtype=np.uint8))
    write_idx(root / f"{STEMS[1]}.gz", rng.integers(0, label_max + 1, labels, dtype=np.uint8))
    write_idx(root / f"{STEMS[2]}.gz", rng.integers(0, 255, (10, 28, 28), dtype=np.uint8))
    write_idx(root / f"{STEMS[3]}.gz", rng.integers(0, 10, 10, dtype=np.uint8))
    return root


def _missing(tmp: Path) -> Path:
    return tmp / "nope"


def _empty(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _truncated(tmp: Path) -> Path:
    d = mnist_dir(tmp / "truncated")
    path = d / f"{STEMS[0]}.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    return d


def _wrong_magic(tmp: Path) -> Path:
    d = mnist_dir(tmp / "magic")
    path = d / f"{STEMS[1]}.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[2] = 0x0D  # float, not unsigned byte
    path.write_bytes(gzip.compress(bytes(raw)))
    return d


def _disagreeing_counts(tmp: Path) -> Path:
    return mnist_dir(tmp / "counts", images=20, labels=19)


def _corrupt_gzip(tmp: Path) -> Path:
    d = mnist_dir(tmp / "gzip")
    path = d / f"{STEMS[2]}.gz"
    path.write_bytes(path.read_bytes()[:30])
    return d


def _labels_out_of_range(tmp: Path) -> Path:
    d = mnist_dir(tmp / "labels")
    write_idx(d / f"{STEMS[1]}.gz", np.full(20, 12, dtype=np.uint8))
    return d


TRAIN_ERRORS = [
    (["--act", "relux"], "unknown activation"),
    (["--act", " , "], "--act is empty"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--epochs", "-3"], "--epochs must be at least 1"),
    (["--epochs", "abc"], "--epochs"),
    (["--lr", "0"], "--lr must be a comma list of finite positive numbers"),
    (["--lr", "nan"], "--lr must be a comma list of finite positive numbers"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--threads", "-1"], "--threads"),
    (["--val-every", "-1"], "--val-every"),
    (["--init", "xavier"], "unknown --init"),
    (["--precision", "fp8"], "unknown --precision"),
    (["--device", "tpu"], "unknown --device"),
    (["--opset", "9"], "--opset must be between"),
    (["--exporter", "tf"], "unknown --exporter"),
    (["--dataset", "imagenet"], "unknown --dataset"),
    (["--alpha", "0.5", "--act", "relu"], "--alpha does not apply to relu"),
    (["--rewrite", "magic"], "unknown --rewrite"),
    (["--rewrite", "pool-first", "--act", "gelu"], "not monotonic"),
    (["--no-such-option"], "no such option"),
]


@pytest.mark.parametrize(("args", "message"), TRAIN_ERRORS, ids=[" ".join(a) for a, _ in TRAIN_ERRORS])
def test_train_export_refuses_bad_options(capsys, monkeypatch, tmp_path, args, message):
    out = tmp_path / "out"
    code, output = invoke(capsys, monkeypatch, "train-export", "--dataset", "sample", *args, "--out", str(out))
    assert_one_line_error(code, output, expected_code=2, contains=message)
    assert not out.exists()


DATA_ERRORS = [
    (_missing, "does not exist"),
    (_empty, "empty"),
    (_truncated, "truncated"),
    (_wrong_magic, "IDX"),
    (_disagreeing_counts, "do not belong together"),
    (_corrupt_gzip, "gzip"),
    (_labels_out_of_range, "label"),
]


@pytest.mark.parametrize(("make", "message"), DATA_ERRORS, ids=[m.__name__.strip("_") for m, _ in DATA_ERRORS])
def test_train_export_refuses_bad_data_directories(capsys, monkeypatch, tmp_path, make, message):
    directory = make(tmp_path)
    out = tmp_path / "out"
    code, output = invoke(
        capsys, monkeypatch, "train-export", "--act", "relu", "--data-dir", str(directory), "--out", str(out)
    )
    assert_one_line_error(code, output, expected_code=2, contains=message)
    assert str(directory) in output
    assert not out.exists()


def test_nan_loss_exits_1_and_writes_no_model(capsys, monkeypatch, tmp_path):
    out = tmp_path / "out"
    code, output = invoke(
        capsys,
        monkeypatch,
        "train-export",
        "--act",
        "relu",
        "--dataset",
        "sample",
        "--lr",
        "1e8",
        "--precision",
        "fp32",
        "--out",
        str(out),
    )
    assert_one_line_error(code, output, expected_code=1, contains="lower --lr")
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []
    assert written == ["runs", "runs/relu-seed-lr100000000.0-s0.json"]  # the divergence, recorded; no model


def test_training_on_cuda_is_refused_without_a_gpu(capsys, monkeypatch, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("PyTorch sees a CUDA GPU here: the refusal cannot be shown")
    out = tmp_path / "out"
    args = ["train-export", "--act", "elu", "--dataset", "sample", "--device", "cuda", "--out", str(out)]
    code, output = invoke(capsys, monkeypatch, *args)
    assert_one_line_error(code, output, expected_code=2, contains="use --device cpu")
    assert "--device cuda" in output
    assert not out.exists()


def test_unwritable_output_is_reported(capsys, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, output = invoke(
        capsys, monkeypatch, "train-export", "--act", "relu", "--dataset", "sample", "--out", str(blocker / "models")
    )
    assert_one_line_error(code, output, expected_code=2, contains="cannot write")


# --- profile, report, diff, optimize, microbench -----------------------------------------------


@pytest.fixture
def models(tmp_path, trained_models) -> Path:
    """A private copy of two real trained models, to damage at will."""
    src, _ = trained_models
    dst = tmp_path / "models"
    dst.mkdir()
    for name in ("relu", "elu"):
        for suffix in (".onnx", ".json"):
            shutil.copy(src / f"{name}{suffix}", dst / f"{name}{suffix}")
    return dst


def _damage_onnx(models: Path) -> None:
    (models / "elu.onnx").write_bytes(b"\x08\x07garbage")


def _json_not_json(models: Path) -> None:
    (models / "elu.json").write_text("{ not json")


def _json_newer_schema(models: Path) -> None:
    data = json.loads((models / "elu.json").read_text())
    data["schema_version"] = 99
    (models / "elu.json").write_text(json.dumps(data))


def _json_wrong_shape(models: Path) -> None:
    data = json.loads((models / "elu.json").read_text())
    data["train"] = [1, 2, 3]
    (models / "elu.json").write_text(json.dumps(data))


def _json_a_list(models: Path) -> None:
    (models / "elu.json").write_text("[1, 2]")


def _onnx_missing(models: Path) -> None:
    (models / "elu.onnx").unlink()


MODEL_DIR_ERRORS = [
    (_damage_onnx, "does not match"),
    (_json_not_json, "not valid JSON"),
    (_json_newer_schema, "upgrade actprof"),
    (_json_wrong_shape, "not a valid ModelRecord"),
    (_json_a_list, "expected a JSON object"),
    (_onnx_missing, "no model 'elu'"),
]


@pytest.mark.parametrize(
    ("damage", "message"), MODEL_DIR_ERRORS, ids=[d.__name__.strip("_") for d, _ in MODEL_DIR_ERRORS]
)
def test_profile_refuses_damaged_model_directories(capsys, monkeypatch, tmp_path, models, damage, message):
    damage(models)
    out = tmp_path / "results"
    code, output = invoke(capsys, monkeypatch, "profile", "--models", str(models), "--out", str(out))
    assert_one_line_error(code, output, expected_code=2, contains=message)
    assert not out.exists()


PROFILE_ERRORS = [
    (["--models", "/nonexistent/models"], "does not exist"),
    (["--provider", "tpu"], "unknown --provider"),
    (["--batch-sizes", "0"], "--batch-sizes"),
    (["--batch-sizes", "1,x"], "--batch-sizes"),
    (["--min-time", "-1"], "--min-time"),
    (["--min-runs", "0"], "--min-runs"),
    (["--opt-level", "turbo"], "unknown --opt-level"),
    (["--act", "relux"], "unknown activation"),
    (["--baseline", "swishy"], "unknown activation"),
    (["--threads", "-2"], "--threads"),
]


@pytest.mark.parametrize(("args", "message"), PROFILE_ERRORS, ids=[" ".join(a) for a, _ in PROFILE_ERRORS])
def test_profile_refuses_bad_options(capsys, monkeypatch, tmp_path, models, args, message):
    out = tmp_path / "results"
    code, output = invoke(capsys, monkeypatch, "profile", "--models", str(models), *args, "--out", str(out))
    assert_one_line_error(code, output, expected_code=2, contains=message)
    assert not out.exists()


def test_profile_refuses_an_empty_models_directory(capsys, monkeypatch, tmp_path):
    (tmp_path / "models").mkdir()
    code, output = invoke(
        capsys, monkeypatch, "profile", "--models", str(tmp_path / "models"), "--out", str(tmp_path / "results")
    )
    assert_one_line_error(code, output, expected_code=2, contains="no models")
    assert not (tmp_path / "results").exists()


def test_profile_cuda_is_refused_where_it_does_not_bind(capsys, monkeypatch, tmp_path, models):

    if provider_status("cuda").binds:
        pytest.skip("a CUDA device binds here: the refusal cannot be shown")
    code, output = invoke(
        capsys,
        monkeypatch,
        "profile",
        "--models",
        str(models),
        "--provider",
        "cuda",
        "--out",
        str(tmp_path / "results"),
    )
    assert_one_line_error(code, output, expected_code=2, contains="did not bind")
    assert not (tmp_path / "results").exists()


REPORT_RESULT_ERRORS = [
    ("profile.json", "{ oops", "not valid JSON"),
    ("profile.json", json.dumps({"schema_version": 99}), "upgrade actprof"),
    ("profile.json", json.dumps({"schema_version": 1, "kind": "profile"}), "not a valid ProfileRecord"),
]


@pytest.mark.parametrize(("name", "text", "message"), REPORT_RESULT_ERRORS, ids=["not-json", "newer", "shape"])
def test_report_refuses_bad_results(capsys, monkeypatch, tmp_path, models, name, text, message):
    results = tmp_path / "results"
    results.mkdir()
    (results / name).write_text(text)
    out = tmp_path / "report"
    code, output = invoke(
        capsys, monkeypatch, "report", "--models", str(models), "--results", str(results), "--out", str(out)
    )
    assert_one_line_error(code, output, expected_code=2, contains=message)
    assert not out.exists()


REPORT_OPTION_ERRORS = [
    (["--format", "pdf"], "unknown --format"),
    (["--baseline", "selu"], "no trained model"),
    (["--target", "150"], "--target"),
]


@pytest.mark.parametrize(("args", "message"), REPORT_OPTION_ERRORS, ids=[" ".join(a) for a, _ in REPORT_OPTION_ERRORS])
def test_report_refuses_bad_options(capsys, monkeypatch, tmp_path, models, args, message):
    out = tmp_path / "report"
    code, output = invoke(
        capsys, monkeypatch, "report", "--models", str(models), "--results", str(tmp_path), *args, "--out", str(out)
    )
    assert_one_line_error(code, output, expected_code=2, contains=message)
    assert not out.exists()


def test_diff_refuses_missing_results_and_bad_thresholds(capsys, monkeypatch, tmp_path):
    code, output = invoke(capsys, monkeypatch, "diff", str(tmp_path / "a"), str(tmp_path / "b"))
    assert_one_line_error(code, output, expected_code=2, contains="no report")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "report.json").write_text(json.dumps({"schema_version": 1, "kind": "model"}))
    code, output = invoke(capsys, monkeypatch, "diff", str(tmp_path / "a"), str(tmp_path / "a"))
    assert_one_line_error(code, output, expected_code=2, contains="not a valid ReportRecord")
    code, output = invoke(capsys, monkeypatch, "diff", str(tmp_path / "a"), str(tmp_path / "a"), "--threshold", "x%")
    assert_one_line_error(code, output, expected_code=2, contains="--threshold")


def test_optimize_refuses_corrupt_and_non_monotonic_models(capsys, monkeypatch, tmp_path, trained_models):
    src, _ = trained_models
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not protobuf")
    code, output = invoke(capsys, monkeypatch, "optimize", str(corrupt))
    assert_one_line_error(code, output, expected_code=2, contains="not a valid ONNX model")
    shutil.copy(src / "gelu.onnx", tmp_path / "gelu.onnx")
    code, output = invoke(capsys, monkeypatch, "optimize", str(tmp_path / "gelu.onnx"))
    assert_one_line_error(code, output, expected_code=2, contains="not monotonic")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.onnx", "gelu.onnx"]


def test_optimize_refuses_external_data_outside_the_model_directory(capsys, monkeypatch, tmp_path, trained_models):
    src, _ = trained_models
    evil = point_weights_outside(with_external_weights(src / "relu.onnx", tmp_path / "inner"))
    code, output = invoke(capsys, monkeypatch, "optimize", str(evil))
    assert_one_line_error(code, output, expected_code=2, contains="outside its directory")
    assert sorted(p.name for p in evil.parent.iterdir()) == ["m.onnx"]


MICROBENCH_ERRORS = [
    (["--sizes", "0"], "--sizes"),
    (["--act", "relux"], "unknown activation"),
    (["--min-time", "0"], "--min-time"),
    (["--provider", "npu"], "unknown --provider"),
]


@pytest.mark.parametrize(("args", "message"), MICROBENCH_ERRORS, ids=[" ".join(a) for a, _ in MICROBENCH_ERRORS])
def test_microbench_refuses_bad_options(capsys, monkeypatch, tmp_path, args, message):
    out = tmp_path / "mb"
    code, output = invoke(capsys, monkeypatch, "microbench", *args, "--out", str(out))
    assert_one_line_error(code, output, expected_code=2, contains=message)
    assert not out.exists()


def test_run_refuses_bad_options_before_training(capsys, monkeypatch, tmp_path):
    out = tmp_path / "reports"
    for args, message in (
        (["--act", "relux"], "unknown activation"),
        (["--rewrite", "x"], "unknown --rewrite"),
        (["--min-time", "0"], "--min-time"),
        (["--epochs", "0"], "--epochs"),
    ):
        code, output = invoke(capsys, monkeypatch, "run", *args, "--models", str(tmp_path / "m"), "--out", str(out))
        assert_one_line_error(code, output, expected_code=2, contains=message)
    assert not out.exists() and not (tmp_path / "m").exists()
