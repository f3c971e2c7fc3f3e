"""Every platform-only call has a fallback: each is taken away here, as macOS or Windows would lack it."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
import warnings

import pytest

from actprof.measure import memory
from actprof.schema import environment, storage
from actprof.training.kernels import build


def test_cores_are_counted_without_sched_getaffinity(monkeypatch):
    expected = len(environment.usable_cpus())
    monkeypatch.delattr(os, "sched_getaffinity")
    assert environment.usable_cpus() == set(range(os.cpu_count() or 1))
    assert 1 <= environment.physical_cores() <= max(expected, os.cpu_count() or 1)


def test_actprof_profile_runs_without_sched_getaffinity(trained_models, tmp_path):
    """The whole command, in a process whose os module has no sched_getaffinity (as on macOS and Windows)."""
    models, _ = trained_models
    args = ["profile", "--models", str(models), "--act", "relu,elu", "--batch-sizes", "1", "--min-time", "0.02"]
    args += ["--min-runs", "3", "--no-ablation", "--dataset", "sample", "--out", str(tmp_path)]
    code = (
        "import os, sys; del os.sched_getaffinity; "
        f"sys.argv = ['actprof', *{args!r}]; from actprof.cli import main; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "profile.json").is_file()


def test_no_proc_filesystem_means_no_memory_reading_and_a_named_cpu(monkeypatch):
    real_open = builtins.open

    def without_proc(path, *args, **kwargs):
        if str(path).startswith(("/proc", "/sys")):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", without_proc)
    assert memory.resident_bytes() == 0
    assert environment.cpu_features() == ""
    assert environment.cpu_model()  # platform's processor or machine name instead
    assert environment.physical_cores() >= 1


def test_no_glibc_is_no_heap_trimming(monkeypatch):
    from actprof.training import loop

    def no_library(*_args, **_kwargs):
        raise OSError("no such library")

    monkeypatch.setattr("ctypes.CDLL", no_library)
    memory._libc.cache_clear()
    try:
        loop.keep_freed_memory()  # nothing to tune: returns quietly
        assert memory._libc() is None
        memory._trim_heap()
    finally:
        memory._libc.cache_clear()


def test_atomic_writes_work_without_pthread_sigmask(monkeypatch, tmp_path):
    import signal

    monkeypatch.delattr(signal, "pthread_sigmask")
    storage.write_text_atomic(tmp_path / "a" / "b.txt", "written")
    assert (tmp_path / "a" / "b.txt").read_text() == "written"


def test_kernels_are_not_loaded_where_file_owners_cannot_be_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTPROF_KERNEL_DIR", str(tmp_path / "kernels"))
    monkeypatch.delattr(os, "getuid")
    build.forget()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert build.library() is None
        assert any("no POSIX file owners" in str(w.message) for w in caught)
    finally:
        build.forget()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="checks the Linux path")
def test_the_affinity_mask_is_used_where_there_is_one():
    assert environment.usable_cpus() == set(os.sched_getaffinity(0))
