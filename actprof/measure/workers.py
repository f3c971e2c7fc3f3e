"""The parent's side of a runtime-version worker (``measure.worker``): start it in its environment, ask it
things, and time its loaded models as ``harness.Timed`` targets in the parent's interleaved rounds.

A worker that stops answering (a runtime deadlocked in its thread pool, an interpreter stuck importing) is
stopped after a timeout and named in one line, never waited on forever. Replies are read by a thread into a
queue, which waits with a timeout on every platform (``selectors`` cannot wait on a pipe on Windows)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from actprof.errors import ActprofError, ProviderUnavailable
from actprof.measure.environments import Environment

START_TIMEOUT_S = 120  # the first reply: the interpreter starts, imports the runtime and binds the provider
# Any later request is a session load, a warm-up, a block of timed runs (a fraction of --min-time), a census or
# a per-op profile: seconds, a minute for a large model on a slow machine. Ten silent minutes is a hang.
REQUEST_TIMEOUT_S = 600
QUIT_TIMEOUT_S = 10


class WorkerFailed(ActprofError):
    """A runtime-version worker stopped or could not do what it was asked (its last words say why)."""


class Worker:
    """One runtime build in its own process; ``request`` sends one request and returns the reply."""

    def __init__(
        self,
        environment: Environment,
        *,
        provider: str,
        threads: int,
        start_timeout: float = START_TIMEOUT_S,
        request_timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.label = environment.pin.label
        self.timeout = request_timeout
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives as long as the worker)
        self._process = subprocess.Popen(
            # -s -P: neither the user's site-packages nor the current directory on its path, only actprof's code
            [str(environment.python), "-s", "-P", "-m", "actprof.measure.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=_worker_environment(environment),
        )
        self._replies: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_read_replies, args=(self._process.stdout, self._replies), daemon=True)
        reader.start()
        try:
            self.build: dict[str, Any] = self.request(
                "start", timeout=start_timeout, provider=provider, threads=threads
            )
        except BaseException:
            self.close()
            raise
        if not self.build["binds"]:
            self.close()
            raise ProviderUnavailable(f"{self.label}: {self.build['reason']}")

    def request(self, op: str, *, timeout: float | None = None, **arguments: Any) -> Any:
        """Send one request and wait for its reply, at most ``timeout`` seconds (default: the worker's)."""
        assert self._process.stdin
        try:
            self._process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it stopped: the reader says so (an empty line), with its last words
        waited = self.timeout if timeout is None else timeout
        try:
            line = self._replies.get(timeout=waited)
        except queue.Empty:
            raise self._hung(op, waited) from None
        if not line:
            raise WorkerFailed(f"the {self.label} worker stopped: {self._last_words() or self._exit()}")
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerFailed(f"{self.label}: {reply['error']}")
        return reply["ok"]

    def _hung(self, op: str, waited: float) -> WorkerFailed:
        """Stop a worker that did not answer, and say so in one line with what to do."""
        self._stop()
        said = f" (it last said: {words})" if (words := self._last_words()) else ""
        if op == "start":
            advice = "check that the build imports in its environment, or leave it out of --runtime-versions"
        else:
            advice = "run again; if it hangs again, leave this build out of --runtime-versions"
        return WorkerFailed(
            f"the {self.label} worker did not answer {op!r} within {waited:g} s and was stopped{said}; {advice}"
        )

    def _last_words(self) -> str:
        if self._log.closed:
            return ""
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def _exit(self) -> str:
        try:  # its output ended: it is exiting
            return f"exit code {self._process.wait(timeout=QUIT_TIMEOUT_S)}"
        except subprocess.TimeoutExpired:
            return "its output closed but it still runs"

    def _stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self.request("quit", timeout=QUIT_TIMEOUT_S)
                self._process.wait(timeout=QUIT_TIMEOUT_S)
            except (ActprofError, subprocess.TimeoutExpired, ValueError):
                self._stop()
        self._log.close()


def _read_replies(stream, replies: queue.Queue[str]) -> None:
    """Every line the worker writes, then "" at its end (the stream closed: it stopped)."""
    try:
        for line in stream:
            replies.put(line)
    except (OSError, ValueError):  # the stream closed under the reader
        pass
    replies.put("")


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
