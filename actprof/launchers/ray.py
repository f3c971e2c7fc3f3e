"""Sweeps on a Ray cluster: every training job one Ray task (the only module that imports ``ray``).

Ray is an optional extra (``pip install 'actprof[ray]'``). The driver connects to a cluster (or starts a
local one), ships MNIST once to the object store, submits one task per (activation, network, learning
rate, seed) asking for the CPUs it trains with (or one GPU), and writes each result through the same
atomic writer as the local executor as it arrives. Tasks are not retried: a failed one is reported with
its configuration and the sweep resumes from what finished.

Timing honesty: by default a task reserves a whole node's CPUs, so no two trainings share cores. A user
who packs tasks tighter (``--cpus-per-task``) gets every time measured that way flagged as contended.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actprof.errors import ActprofError, TrainingDiverged, UsageError
from actprof.launchers.config import Placement, RemoteProfile
from actprof.training import sweep

if TYPE_CHECKING:
    from actprof.data.mnist import MNIST
    from actprof.schema.training import RunRecord, TrainJob

INSTALL_HINT = "pip install 'actprof[ray]'"


def _ray():
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str | None) -> None:
    """Join the cluster at ``address``; None starts a local cluster (or joins the one RAY_ADDRESS names).

    An address that does not answer is refused in seconds, not after Ray's own minute-long retries."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address not in (None, "auto"):
        _check_reachable(address)
        _use_token_if_available()  # before Ray reads its configuration
    ray = _ray()
    if ray.is_initialized():
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:
        address = "local"  # a new cluster of this machine alone, listening on loopback only
        options["_node_ip_address"] = "127.0.0.1"
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a new local cluster" if address == "local" else address
        raise UsageError(
            f"cannot join the Ray cluster at {where} ({_first_line(exc)[:160]}); "
            "start one with `ray start --head` or fix --ray-address"
        ) from None


def _use_token_if_available() -> None:
    """Ray 2.60 clusters started with ``ray start`` use token authentication when a token exists
    (~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH), but a driver joining them by explicit
    address does not send it unless RAY_AUTH_MODE=token: the join then fails with InvalidAuthToken."""
    if "RAY_AUTH_MODE" in os.environ:
        return  # the user chose
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return
    except (OSError, ValueError):
        raise UsageError(
            f"--ray-address {address}: nothing answers there; start a head with `ray start --head` "
            "or give the address it printed (host:port)"
        ) from None


def node_cpus() -> dict[str, int]:
    """CPUs per alive node (Ray's logical CPUs), by node id."""
    ray = _ray()
    return {n["NodeID"]: int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")}


def cpus_per_task(placement: Placement) -> int:
    """What each task asks for: the user's number, or a whole node's CPUs (the smallest node's, so that
    every task fits anywhere; on a larger node tasks then share it and are flagged contended)."""
    if placement.cpus_per_task:
        return placement.cpus_per_task
    sizes = [c for c in node_cpus().values() if c > 0]
    if not sizes:
        raise ActprofError("the Ray cluster has no node with CPUs; add a worker with `ray start --address ...`")
    return min(sizes)


def check_feasible(cpus: int, *, gpu: bool) -> None:
    """Refuse a task no alive node can run (Ray would leave it pending forever, silently)."""
    ray = _ray()
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if not any(r.get("CPU", 0) >= cpus and (not gpu or r.get("GPU", 0) >= 1) for r in nodes):
        biggest = max((int(r.get("CPU", 0)) for r in nodes), default=0)
        need = f"{cpus} CPUs" + (" and a GPU" if gpu else "")
        raise UsageError(
            f"no node of the Ray cluster has {need} (the largest has {biggest} CPUs"
            + (f", {sum(int(r.get('GPU', 0)) for r in nodes)} GPUs in all" if gpu else "")
            + "); lower --cpus-per-task or add a node that has them"
        )


def _train_task(job: TrainJob, data: MNIST) -> tuple[bytes, RunRecord]:
    """Runs on a worker: train with exactly the CPUs reserved, and say whether the node was shared."""
    import ray
    import torch

    context = ray.get_runtime_context()
    reserved = context.get_assigned_resources().get("CPU", 0) or 1
    torch.set_num_threads(max(1, int(reserved)))
    onnx_bytes, record = sweep.run_job(job, data)
    node = next((n for n in ray.nodes() if n["NodeID"] == context.get_node_id()), None)
    total = int(node["Resources"].get("CPU", reserved)) if node else int(reserved)
    contended = reserved < total  # other tasks could run beside this one on the same cores' node
    train = replace(record.train, contended=contended, executor=f"ray ({int(reserved)} of {total} CPUs)")
    return onnx_bytes, replace(record, train=train)


def run_ray(
    todo: Sequence[TrainJob],
    data: MNIST,
    runs_dir: Path,
    placement: Placement,
    *,
    on_done: Callable[[TrainJob], None] = lambda job: None,
) -> tuple[dict[str, tuple[bytes, RunRecord]], list[sweep.Failure]]:
    """Every job as one Ray task; results are saved on the driver as they arrive, failures collected."""
    ray = _ray()
    if not todo:
        return {}, []
    connect(placement.address)
    cpus = cpus_per_task(placement)
    check_feasible(cpus, gpu=placement.gpu)
    task = ray.remote(_train_task).options(num_cpus=cpus, num_gpus=1 if placement.gpu else 0, max_retries=0)
    data_ref = ray.put(data)
    running = {task.remote(job, data_ref): job for job in todo}
    results: dict[str, tuple[bytes, RunRecord]] = {}
    failures = []
    while running:
        (ref,), _ = ray.wait(list(running), num_returns=1)
        job = running.pop(ref)
        try:
            onnx_bytes, record = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, TrainingDiverged):
                failures.append(sweep.save_diverged(runs_dir, job, data.identity, str(cause)))
            else:
                reason = str(cause) if isinstance(cause, ActprofError) else _first_line(cause or exc)
                failures.append(sweep.Failure(job, reason))
        except ray.exceptions.RayError as exc:  # the worker died or its node was lost
            failures.append(sweep.Failure(job, f"{type(exc).__name__}: {_first_line(exc)}"))
        else:
            sweep.save_run(runs_dir, onnx_bytes, record)
            results[job.stem] = (onnx_bytes, record)
        on_done(job)
    return results, failures


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# --- profiling on a node the user selects --------------------------------------------------------


def profiling_node_cpus(resource: str) -> int:
    """CPUs of the smallest alive node offering the custom resource ``resource`` (the task reserves all of
    them, so nothing else runs beside the measurement). Refuses when no node offers it."""
    ray = _ray()
    sizes = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive") and resource in n["Resources"]]
    if not sizes:
        raise UsageError(
            f"--profile-on {resource}: no node of the Ray cluster offers that resource; start the node to profile "
            f"on with `ray start ... --resources '{{\"{resource}\": 1}}'`"
        )
    return min(sizes)


def _profile_task(files: dict[str, bytes], names: list[str] | None, settings, baseline: str, mnist):
    """Runs on the selected node: the same profile stage as on the driver, on the models written to a scratch
    directory; the node's own thread pool (ORT's default: one per physical core of that node, unless the
    settings ask for a count)."""
    import tempfile

    from actprof.measure.profile import profile_models
    from actprof.measure.providers import resolve
    from actprof.schema.storage import find_models

    settings = resolve(settings, skip_unbound=False)
    with tempfile.TemporaryDirectory() as scratch:
        models = Path(scratch)
        for name, data in files.items():
            (models / name).write_bytes(data)
        return profile_models(find_models(models, names), settings, mnist, baseline=baseline)


def profile_on(
    remote: RemoteProfile,
    files: dict[str, bytes],
    names: list[str] | None,
    settings,
    *,
    baseline: str,
    mnist: MNIST,
):
    """The profile stage as one Ray task on a node offering ``remote.resource``, reserving all its CPUs.

    Returns the profile record (its environment names that node's hardware) and the derived model files."""
    resource = remote.resource
    ray = _ray()
    connect(remote.address)
    cpus = profiling_node_cpus(resource)
    task = ray.remote(_profile_task).options(num_cpus=cpus, resources={resource: 1}, max_retries=0)
    try:
        return ray.get(task.remote(files, names, settings, baseline, mnist))
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ActprofError):
            raise cause from None
        raise ActprofError(f"profiling on the {resource} node failed: {_first_line(cause or exc)}") from None
    except ray.exceptions.RayError as exc:
        raise ActprofError(f"profiling on the {resource} node failed: {_first_line(exc)}") from None
