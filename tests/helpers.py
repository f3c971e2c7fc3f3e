"""Helpers shared by the tests (conftest holds the fixtures)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from actprof import api
from actprof.settings.profile import ProfileSettings
from actprof.settings.training import TrainConfig

FAST = TrainConfig(epochs=1, batch_size=250, val_every=10, val_size=500, seed=0)


def train_and_export(
    act,
    train: TrainConfig,
    data,
    out: Path,
    *,
    recipe: api.Recipe | None = None,
    lrs=(),
    extra_seeds=(),
    force: bool = False,
    rewrite: str = "none",
    opset: int = api.ExportOptions().opset,
    exporter: str = api.ExportOptions().exporter,
):
    """One activation through the public API (every rate in ``lrs`` × the seeds), raising a failed run as
    the command line does; its model record."""
    trained = api.train_export(
        [act],
        train=train,
        sweep=api.Sweep.of(train, lrs, extra_seeds, force=force),
        recipe=recipe or api.Recipe(),
        export=api.ExportOptions(out=out, rewrite=rewrite, opset=opset, exporter=exporter),
        data=data,
    )
    trained.check()
    return trained.records[0]


def quick_settings(
    providers: list[str], batch_sizes: list[int], *, threads: int = 0, ablation: bool = True, cuda_graph: bool = False
) -> ProfileSettings:
    """Profile settings with short timing (0.05 s and 5 runs per target) at ORT's top optimization level."""
    return ProfileSettings(
        providers=providers,
        batch_sizes=batch_sizes,
        threads=threads,
        opt_levels=["all"],
        min_time=0.05,
        min_runs=5,
        ablation=ablation,
        cuda_graph=cuda_graph,
        input="real MNIST test images (bundled sample)",
    )


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``actprof`` as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "actprof", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def assert_user_error(result: subprocess.CompletedProcess, *, code: int, contains: str) -> None:
    """One clear line on stderr, the documented exit code, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("actprof: error:"), result.stderr
    assert contains.lower() in lines[-1].lower(), lines[-1]


def with_external_weights(source: Path, directory: Path) -> Path:
    """``source`` saved as ``directory/m.onnx`` with its weights beside it in ``directory/w.bin``."""
    import onnx

    directory.mkdir()
    path = directory / "m.onnx"
    onnx.save_model(onnx.load(str(source)), str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    return path


def point_weights_outside(path: Path) -> Path:
    """Move the model's external weights one directory up and point it at ``../w.bin``: what a loader must
    refuse (a model file may not reach outside its own directory)."""
    import onnx

    shutil.move(path.parent / "w.bin", path.parent.parent / "w.bin")
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../w.bin"
    path.write_bytes(model.SerializeToString())
    return path


def plain_ort_session(model):
    """A bare ONNX Runtime CPU session (independent of actprof's session helpers) that fits in this
    process: actprof shares one global thread pool, and ORT then requires every session to use it."""
    import onnxruntime as ort

    from actprof.runtimes.onnxruntime import ort_runtime

    ort_runtime()
    options = ort.SessionOptions()
    options.use_per_session_threads = False
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
