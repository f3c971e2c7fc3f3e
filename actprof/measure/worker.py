"""A runtime-version worker: one build of a runtime, in a process (and environment) of its own, driven by the
parent over JSON lines on stdin/stdout (``python -m actprof.measure.worker``).

It runs actprof's own backend and timing loop (``runtimes.backend``, ``harness.time_runs``, ``warm_up``,
``op_profile``, the census), so each build is measured exactly as ``actprof profile`` measures the runtime
installed beside it; only the rounds are the parent's, which alternate between the workers. It needs numpy,
onnx and the runtime, never torch. Every build runs its sessions with a thread pool each
(``use_session_pools``): releases before ONNX Runtime 1.22 cannot share one, and all builds must run alike.

Requests are ``{"op": ..., ...}``; each gets one reply line, ``{"ok": ...}`` or ``{"error": "one line"}``.
Nothing else reaches stdout: what the runtime prints goes to stderr.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from actprof.errors import ActprofError
from actprof.measure import harness
from actprof.runtimes.base import fix_threads
from actprof.schema.storage import to_dict

PACKAGE_OF = {"cpu": "onnxruntime", "openvino": "openvino"}


class Worker:
    def __init__(self) -> None:
        self.backend: Any = None
        self.targets: dict[str, Any] = {}

    def handle(self, request: dict[str, Any]) -> Any:
        return getattr(self, "op_" + request.pop("op"))(**request)

    def op_start(self, provider: str, threads: int) -> dict[str, Any]:
        from actprof import runtimes

        fix_threads(threads)
        if provider == "cpu":
            from actprof.runtimes.onnxruntime import ort_runtime, thread_pools, use_session_pools

            use_session_pools()
            ort_runtime(threads)
            pools = thread_pools()
        else:
            pools = f"{threads or 'default'} threads"
        self.backend = runtimes.backend(provider)
        status = self.backend.status()
        return {
            "version": _version(PACKAGE_OF[provider]),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "onnx": _version("onnx"),
            "threads": pools,
            "binds": status.binds,
            "reason": status.reason,
        }

    def op_load(self, key: str, model: str, opt_level: str, x: str, names: list[str]) -> None:
        loaded = self.backend.load(Path(model).read_bytes(), opt_level=opt_level)
        target = self.backend.compute_target(loaded, np.load(x), input_name=names[0], output_name=names[1])
        self.targets[key] = target

    def op_warm(self, key: str, runs: int | None) -> float:
        return harness.warm_estimate(self.targets[key].run, runs)

    def op_time(self, key: str, count: int) -> list[int]:
        return harness.time_runs(self.targets[key].run, count)

    def op_unload(self) -> None:
        self.targets.clear()

    def op_census(self, name: str, model: str, opt_level: str) -> dict[str, Any]:
        return to_dict(self.backend.census(name, Path(model).read_bytes(), opt_level=opt_level))

    def op_ops(self, name: str, model: str, batch: int, opt_level: str, x: str) -> dict[str, Any]:
        profile = harness.op_profile(
            self.backend, name, Path(model).read_bytes(), batch=batch, opt_level=opt_level, x=np.load(x)
        )
        return to_dict(profile)

    def op_quit(self) -> None:
        return None


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return version(package + "-gpu") if package == "onnxruntime" else "unknown"


def serve(requests, replies) -> None:
    worker = Worker()
    for line in requests:
        request = json.loads(line)
        op = request.get("op")
        try:
            reply = {"ok": worker.handle(request)}
        except ActprofError as exc:
            reply = {"error": str(exc)}
        except Exception as exc:  # a worker reports, the parent decides; never a traceback on the protocol
            reply = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
        if op == "quit":
            return


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the runtime prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
