"""Sweeps on a real local Ray cluster (``ray.init(num_cpus=2)``, loopback only): the same results as the
local executor, failures that leave the rest complete, a killed worker, and resuming afterwards."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from actprof import activations, api
from actprof.errors import SweepFailed, UsageError
from actprof.export.config import ExportOptions
from actprof.launchers.config import Placement, RemoteProfile
from actprof.launchers.ray import connect
from actprof.pipeline.training import Trained, train_sweep
from actprof.schema import storage
from actprof.schema.profiling import ProfileRecord
from actprof.training.config import Sweep
from actprof.training.model import config_for
from tests.helpers import FAST, quick_settings, run_cli

ray = pytest.importorskip("ray", reason="Ray is in the dev extra; install '.[dev]'")

QUICK = replace(FAST, val_every=0, val_size=300)
PLACEMENT = Placement()  # tasks reserve a whole node: both CPUs


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(
        num_cpus=2,
        resources={"profiler": 1},
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    yield
    ray.shutdown()


def sweep_on(executor, out: Path, sample, names=("relu", "elu"), lrs=(1e-3,), seeds=(0,), train=QUICK) -> Trained:
    """Train ``names`` × ``lrs`` × ``seeds`` on the bundled sample with one executor (None: local)."""
    models = [(activations.get(n), config_for(activations.get(n))) for n in names]
    plan = Sweep(lrs=tuple(lrs), seeds=tuple(seeds))
    return train_sweep(models, train, sample, ExportOptions(out=out), plan, baseline=None, placement=executor)


def stamps(runs: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}


def test_ray_and_local_executors_give_the_same_results(local_cluster, sample, tmp_path):
    here = sweep_on(None, tmp_path / "local", sample).records
    there = sweep_on(PLACEMENT, tmp_path / "ray", sample)
    assert not there.failures
    for a, b in zip(here, there.records, strict=True):
        assert a.export.sha256 == b.export.sha256  # identical ONNX weights
        assert a.train.step_loss == b.train.step_loss
        assert [p.val_accuracy for p in a.train.validation] == [p.val_accuracy for p in b.train.validation]
        assert a.train.test_accuracy == b.train.test_accuracy
        assert b.train.executor == "ray (2 of 2 CPUs)" and not b.train.contended
        assert a.train.executor == "local"
        assert (tmp_path / "ray" / "runs" / f"{b.activation.name}-seed-lr0.001-s0.onnx").is_file()


def test_a_task_that_raises_leaves_the_rest_complete_and_named(local_cluster, sample, tmp_path):
    diverging = replace(QUICK, precision="fp32")
    trained = sweep_on(PLACEMENT, tmp_path, sample, names=("relu",), lrs=(1e-3, 1e8), train=diverging)
    failures = trained.failures
    assert [str(f) for f in failures] == [
        f"relu, seed CNN, lr 1e+08, seed 0: {failures[0].reason}"
    ] and "loss became" in failures[0].reason
    assert trained.records[0].lr_choice.chosen == 1e-3  # the rate that finished is still chosen and exported
    assert failures[0].diverged  # saved as such: a resumed sweep does not train it again
    assert sorted(stamps(tmp_path / "runs")) == ["relu-seed-lr0.001-s0.json", "relu-seed-lr100000000.0-s0.json"]


def _kill_first_training_worker(stop: threading.Event) -> None:
    """SIGKILL the first Ray worker process seen running a training task (Ray titles it ray::_train_task)."""
    while not stop.is_set():
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if entry.name.isdigit() and b"ray::_train_task" in cmdline:
                os.kill(int(entry.name), signal.SIGKILL)
                return
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the Ray worker to kill in /proc, which only Linux has")
def test_a_killed_worker_fails_one_run_and_the_next_sweep_resumes(local_cluster, sample, tmp_path):
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_training_worker, args=(stop,), daemon=True)
    killer.start()
    try:
        trained = sweep_on(PLACEMENT, tmp_path, sample, seeds=(0, 1))
    finally:
        stop.set()
    assert len(trained.failures) == 1, trained.failures
    assert "Error" in trained.failures[0].reason  # the worker died: Ray's own error type names it
    finished = stamps(tmp_path / "runs")
    assert len(finished) == 3
    assert len(trained.records) == 1  # the activation that lost a seed is not assembled; the other is
    resumed = sweep_on(PLACEMENT, tmp_path, sample, seeds=(0, 1))
    assert not resumed.failures and len(resumed.records) == 2
    after = stamps(tmp_path / "runs")
    assert len(after) == 4
    assert all(after[name] == stamp for name, stamp in finished.items())  # only the killed run trained again


def test_packed_tasks_are_flagged_contended(local_cluster, sample, tmp_path):
    trained = sweep_on(replace(PLACEMENT, cpus_per_task=1), tmp_path, sample, names=("relu",))
    assert not trained.failures
    [record] = trained.records
    assert record.train.contended and record.train.executor == "ray (1 of 2 CPUs)"


def test_sweep_failed_is_exit_1_and_names_the_run(local_cluster, sample, tmp_path):
    train = replace(QUICK, precision="fp32")
    trained = api.train_export(
        [activations.get("relu")],
        train=train,
        sweep=Sweep.of(train, (1e-3, 1e8)),
        export=ExportOptions(out=tmp_path),
        data=sample,
        placement=PLACEMENT,
    )
    assert [r.name for r in trained.records] == ["relu"] and trained.records[0].lr_choice.chosen == 1e-3
    with pytest.raises(SweepFailed, match=r"1 training\(s\) failed \(relu, seed CNN, lr 1e\+08, seed 0: loss became"):
        trained.check()
    assert SweepFailed.exit_code == 1


# --- profiling on a node the user selects -----------------------------------------------------------


def test_profile_runs_on_the_node_offering_the_resource(local_cluster, trained_models, sample, tmp_path):
    models, _ = trained_models
    record = api.profile(
        models,
        settings=quick_settings(["cpu"], [1], ablation=False),
        names=["relu", "elu"],
        baseline="relu",
        data=sample,
        out=tmp_path,
        remote=RemoteProfile(resource="profiler"),
    )
    assert storage.read_json(tmp_path / "profile.json", ProfileRecord) == record
    assert {r.model for r in record.latency} == {"relu", "elu"}
    assert record.environment.cpu_model  # the node's hardware, as it saw it
    elu = next(r for r in record.latency if r.model == "elu" and r.variant == "as-trained")
    assert elu.vs_baseline is not None  # ratios within the one node's profile


def test_profile_on_a_resource_no_node_offers_is_refused(local_cluster, trained_models, sample, tmp_path):
    models, _ = trained_models
    with pytest.raises(UsageError, match="no node of the Ray cluster offers that resource"):
        api.profile(
            models,
            settings=quick_settings(["cpu"], [1]),
            names=["relu"],
            baseline="relu",
            data=sample,
            out=tmp_path,
            remote=RemoteProfile(resource="gpu-box"),
        )
    assert not (tmp_path / "profile.json").exists()


# --- refusals ------------------------------------------------------------------------------------


def assert_one_line(result, contains: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert contains in result.stderr


def test_unknown_executor_is_refused(tmp_path):
    result = run_cli("train-export", "--dataset", "sample", "--executor", "mesos", "--out", str(tmp_path))
    assert_one_line(result, "unknown --executor 'mesos'; choose from: local, ray")


def test_an_unreachable_ray_address_is_refused_before_ray_is_asked(monkeypatch):
    """Ray's own connection retries last about a minute: the address is checked first, in seconds."""
    import ray

    def not_asked(*_args, **_kwargs):
        raise AssertionError("ray.init was called for an address nothing answers at")

    monkeypatch.setattr(ray, "init", not_asked)
    with pytest.raises(UsageError, match=r"--ray-address 127\.0\.0\.1:9: nothing answers there"):
        connect("127.0.0.1:9")


def test_unreachable_ray_address_is_one_line(tmp_path):
    result = run_cli(
        "train-export",
        "--dataset",
        "sample",
        "--executor",
        "ray",
        "--ray-address",
        "127.0.0.1:9",
        "--out",
        str(tmp_path),
    )
    assert_one_line(result, "--ray-address 127.0.0.1:9: nothing answers there")
    assert not (tmp_path / "runs").exists()


def test_ray_options_without_the_ray_executor_are_refused(tmp_path):
    result = run_cli("train-export", "--dataset", "sample", "--cpus-per-task", "1", "--out", str(tmp_path))
    assert_one_line(result, "--ray-address and --cpus-per-task apply to --executor ray (or --profile-on)")


def test_tasks_no_node_can_run_are_refused_not_left_pending(local_cluster, sample, tmp_path):
    with pytest.raises(UsageError, match="no node of the Ray cluster has 64 CPUs"):
        sweep_on(replace(PLACEMENT, cpus_per_task=64), tmp_path, sample, names=("relu",))
    with pytest.raises(UsageError, match="no node of the Ray cluster has 2 CPUs and a GPU"):
        sweep_on(replace(PLACEMENT, gpu=True), tmp_path, sample, names=("relu",))


def test_missing_ray_names_the_extra(tmp_path):
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('ray is not installed here')\n")
    result = run_cli(
        "run", "--act", "relu", "--executor", "ray", "--out", str(tmp_path / "r"), env={"PYTHONPATH": str(shim.parent)}
    )
    assert_one_line(result, "pip install 'actprof[ray]'")
    assert not (tmp_path / "r").exists()
