"""Ctrl-C at any point leaves nothing partial, what remains loads, and a re-run succeeds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actprof.schema import storage
from actprof.schema.profiling import ProfileRecord
from actprof.schema.reports import ReportRecord
from actprof.schema.storage import read_json

pytestmark = pytest.mark.slow


def interrupt_after(seconds: float, *args: str) -> subprocess.CompletedProcess:
    process = subprocess.Popen(
        [sys.executable, "-m", "actprof", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ACTPROF_OFFLINE": "1"},
    )
    time.sleep(seconds)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def assert_nothing_partial(directory: Path) -> None:
    leftovers = [p.name for p in directory.rglob("*") if p.name.endswith(".tmp")] if directory.exists() else []
    assert leftovers == []


def assert_clean_exit(result: subprocess.CompletedProcess) -> None:
    assert result.returncode in (0, 130), result.stderr
    assert "Traceback" not in result.stderr
    if result.returncode == 130:
        assert "interrupted" in result.stderr


@pytest.mark.parametrize("delay", [1.0, 3.5, 6.0])
def test_train_export_interrupted(tmp_path, delay):
    out = tmp_path / "models"
    result = interrupt_after(delay, "train-export", "--act", "relu,elu", "--dataset", "sample", "--out", str(out))
    assert_clean_exit(result)
    assert_nothing_partial(out)
    if out.exists() and any(out.glob("*.json")):
        for _, record in storage.find_models(out):  # every pair that exists is complete and consistent
            assert record.export.parity.argmax_agree
    rerun = subprocess.run(
        [sys.executable, "-m", "actprof", "train-export", "--act", "relu", "--dataset", "sample", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert rerun.returncode == 0, rerun.stderr


@pytest.mark.parametrize("delay", [1.5, 4.0])
def test_profile_interrupted(tmp_path, trained_models, delay):
    models = tmp_path / "models"
    models.mkdir()
    for name in ("relu", "elu"):
        for suffix in (".onnx", ".json"):
            shutil.copy(trained_models[0] / f"{name}{suffix}", models / f"{name}{suffix}")
    out = tmp_path / "results"
    args = ["profile", "--models", str(models), "--batch-sizes", "1", "--min-time", "0.5", "--out", str(out)]
    result = interrupt_after(delay, *args)
    assert_clean_exit(result)
    assert_nothing_partial(out)
    if (out / "profile.json").exists():
        read_json(out / "profile.json", ProfileRecord)
    rerun = subprocess.run(
        [sys.executable, "-m", "actprof", *args[:-2], "--min-time", "0.05", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert read_json(out / "profile.json", ProfileRecord).latency


def test_run_interrupted_then_rerun(tmp_path):
    out, models = tmp_path / "reports", tmp_path / "models"
    args = [
        "run",
        "--act",
        "relu,elu",
        "--dataset",
        "sample",
        "--batch-sizes",
        "1",
        "--min-time",
        "0.05",
        "--models",
        str(models),
        "--out",
        str(out),
    ]
    result = interrupt_after(5.0, *args)
    assert_clean_exit(result)
    assert_nothing_partial(out)
    assert_nothing_partial(models)
    rerun = subprocess.run([sys.executable, "-m", "actprof", *args], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert read_json(out / "report.json", ReportRecord).verdicts


def test_a_ctrl_c_inside_an_extensions_import_counts_as_an_interrupt():
    """ONNX Runtime's import turns a Ctrl-C into ImportError("initialization failed"): main() still exits 130."""
    from actprof.cli.main import _caused_by_interrupt

    def failed_import():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            raise ImportError("initialization failed") from interrupt

    with pytest.raises(ImportError) as caught:
        failed_import()
    assert _caused_by_interrupt(caught.value)
    assert not _caused_by_interrupt(ImportError("no module named onnxruntime"))
