"""Helpers shared by the tests (conftest holds the fixtures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from actprof.records import TrainConfig

FAST = TrainConfig(epochs=1, batch_size=250, val_every=10, val_size=500, seed=0)


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


def plain_ort_session(model):
    """A bare ONNX Runtime CPU session (independent of actprof's session helpers) that fits in this
    process: actprof shares one global thread pool, and ORT then requires every session to use it."""
    import onnxruntime as ort

    from actprof.profile import ort_runtime

    ort_runtime()
    options = ort.SessionOptions()
    options.use_per_session_threads = False
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
