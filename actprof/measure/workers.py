"""The parent's side of a runtime-version worker (``measure.worker``): start it in its environment, ask it
things, and time its loaded models as ``harness.Timed`` targets in the parent's interleaved rounds."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from actprof.errors import ActprofError, ProviderUnavailable
from actprof.measure.environments import Environment

START_TIMEOUT_S = 120


class WorkerFailed(ActprofError):
    """A runtime-version worker stopped or could not do what it was asked (its last words say why)."""


class Worker:
    """One runtime build in its own process; ``request`` sends one request and returns the reply."""

    def __init__(self, environment: Environment, *, provider: str, threads: int) -> None:
        self.label = environment.pin.label
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives as long as the worker)
        self._process = subprocess.Popen(
            [str(environment.python), "-s", "-m", "actprof.measure.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=_worker_environment(environment),
        )
        self.build: dict[str, Any] = self.request("start", provider=provider, threads=threads)
        if not self.build["binds"]:
            self.close()
            raise ProviderUnavailable(f"{self.label}: {self.build['reason']}")

    def request(self, op: str, **arguments: Any) -> Any:
        assert self._process.stdin and self._process.stdout
        try:
            self._process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            raise WorkerFailed(f"the {self.label} worker stopped: {self._last_words()}")
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerFailed(f"{self.label}: {reply['error']}")
        return reply["ok"]

    def _last_words(self) -> str:
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().splitlines() if line.strip()]
        return lines[-1] if lines else f"exit code {self._process.poll()}"

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self.request("quit")
                self._process.wait(timeout=10)
            except (ActprofError, subprocess.TimeoutExpired, ValueError):
                self._process.kill()
                self._process.wait()
        self._log.close()


class RemoteTarget:
    """A model loaded in a worker, timed there in blocks the parent's rounds ask for (``harness.Timed``)."""

    def __init__(self, worker: Worker, key: str) -> None:
        self.worker, self.key = worker, key

    def warm(self, runs: int | None) -> float:
        return float(self.worker.request("warm", key=self.key, runs=runs))

    def time(self, count: int) -> list[int]:
        return [int(ns) for ns in self.worker.request("time", key=self.key, count=count)]


def _worker_environment(environment: Environment) -> dict[str, str]:
    """The worker's variables: actprof's code first on its path; for another environment only actprof's code
    (``Environment.code``), never the site-packages of this one."""
    variables = dict(os.environ)
    code = environment.code or Path(__file__).resolve().parents[2]
    inherited = variables.get("PYTHONPATH") if environment.code is None else None
    variables["PYTHONPATH"] = os.pathsep.join(p for p in (str(code), inherited) if p)
    variables["PYTHONNOUSERSITE"] = "1"
    return variables
