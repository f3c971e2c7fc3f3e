"""A runtime-version worker that hangs or dies is stopped and named in one line, never waited on forever.

The workers here are real processes, tiny shell scripts standing where an environment's interpreter would be:
one never answers, one answers ``start`` and then hangs, one dies saying why."""

from __future__ import annotations

import os
import time

import pytest

from actprof.measure.environments import Environment
from actprof.measure.workers import Worker, WorkerFailed
from actprof.settings.versions import RuntimePin

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the fake workers are POSIX shell scripts")

STARTED = '{"ok": {"binds": true, "reason": null, "version": "9.9.9"}}'


def _fake_worker(tmp_path, body: str) -> tuple[Environment, os.PathLike]:
    """An environment whose interpreter is ``body`` (a shell script), which writes its process id first."""
    pid_file = tmp_path / "pid"
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\necho $$ > {pid_file}\n{body}")
    python.chmod(0o700)
    return Environment(RuntimePin("onnxruntime", "9.9.9"), python, tmp_path), pid_file


def _gone(pid_file) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        return True
    return False


def test_a_worker_that_never_answers_is_stopped_after_the_start_timeout(tmp_path):
    environment, pid_file = _fake_worker(tmp_path, "echo 'importing onnxruntime' >&2\nexec sleep 30\n")
    began = time.monotonic()
    with pytest.raises(WorkerFailed) as caught:
        Worker(environment, provider="cpu", threads=1, start_timeout=0.5)
    assert time.monotonic() - began < 3
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the onnxruntime 9.9.9 worker did not answer 'start' within 0.5 s and was stopped")
    assert "(it last said: importing onnxruntime)" in message and "leave it out of --runtime-versions" in message
    assert _gone(pid_file)  # killed and reaped, not left sleeping


def test_a_worker_that_hangs_on_a_request_is_stopped_after_the_request_timeout(tmp_path):
    environment, pid_file = _fake_worker(tmp_path, f"read request\necho '{STARTED}'\nread request\nexec sleep 30\n")
    worker = Worker(environment, provider="cpu", threads=1, start_timeout=5, request_timeout=0.5)
    try:
        assert worker.build["version"] == "9.9.9"
        began = time.monotonic()
        with pytest.raises(WorkerFailed, match=r"did not answer 'time' within 0\.5 s and was stopped; run again"):
            worker.request("time", key="elu", count=100)
        assert time.monotonic() - began < 2 and _gone(pid_file)
        with pytest.raises(WorkerFailed, match="worker stopped"):  # asked again: it is gone, said at once
            worker.request("time", key="elu", count=100)
    finally:
        worker.close()


def test_a_worker_that_dies_says_its_last_words(tmp_path):
    environment, _ = _fake_worker(tmp_path, "echo 'ModuleNotFoundError: No module named onnxruntime' >&2\nexit 3\n")
    with pytest.raises(WorkerFailed) as caught:
        Worker(environment, provider="cpu", threads=1, start_timeout=5)
    assert str(caught.value) == "the onnxruntime 9.9.9 worker stopped: ModuleNotFoundError: No module named onnxruntime"
