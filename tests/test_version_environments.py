"""``--runtime-versions`` environments: run only when trusted, installed only when allowed, and every failure of
venv or pip one line. The environments here are planted (no package index): an interpreter that leaves a trace
when it runs, where actprof's would be; venv and pip are stood in for by a script run as this interpreter."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from actprof.errors import RuntimeInstallError
from actprof.measure import environments
from actprof.measure.environments import MARKER, environment_for
from actprof.measure.workers import Worker, WorkerFailed
from actprof.settings.versions import RuntimePin

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX owners and modes; shell scripts")

PIN = RuntimePin("onnxruntime", "1.20.1")


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """A runtime cache of this test's own (not yet made)."""
    directory = tmp_path / "runtimes"
    monkeypatch.setenv("ACTPROF_RUNTIME_DIR", str(directory))
    return directory


def _plant(root: Path) -> tuple[Path, Path]:
    """An environment of PIN's where actprof's would be, made as actprof makes them (private, no one else can
    write), whose interpreter touches ``trace`` when it runs."""
    home = root / environments._env_name(PIN)
    trace = root.parent / "ran"
    (home / "bin").mkdir(mode=0o700, parents=True)
    os.chmod(root, 0o700)
    (home / "bin" / "python").write_text(f"#!/bin/sh\ntouch {trace}\n")
    (home / MARKER).write_text("{}")
    (home / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for path, mode in (("bin/python", 0o700), (MARKER, 0o600), ("pyvenv.cfg", 0o600)):
        os.chmod(home / path, mode)
    return home, trace


def _run(pin: RuntimePin) -> None:
    """What ``profile --runtime-versions`` does with a build: find its environment, start a worker in it."""
    Worker(environment_for(pin), provider="cpu", threads=1, start_timeout=5).close()


def test_a_trusted_environment_is_run(root):
    """The control: the planted interpreter runs when nothing is wrong with it (and fails as a worker)."""
    _, trace = _plant(root)
    with pytest.raises(WorkerFailed, match="worker stopped"):
        _run(PIN)
    assert trace.exists()


@pytest.mark.parametrize(
    ("where", "mode"),
    [
        (".", 0o777),
        (".", 0o775),
        (MARKER, 0o666),
        ("pyvenv.cfg", 0o620),
        ("bin", 0o757),
        ("bin/python", 0o772),
    ],
    ids=["world-writable", "group-writable", "marker", "pyvenv.cfg", "bin", "interpreter"],
)
def test_a_planted_writable_environment_is_not_run(root, where, mode):
    home, trace = _plant(root)
    os.chmod(home / where, mode)
    with pytest.raises(RuntimeInstallError) as caught:
        _run(PIN)
    message = str(caught.value)
    assert "writable by others" in message and f"delete {home}" in message and "\n" not in message
    assert not trace.exists()


def test_a_writable_runtime_cache_is_not_used(root):
    _, trace = _plant(root)
    os.chmod(root, 0o777)
    with pytest.raises(RuntimeInstallError, match=r"refusing to use the runtime cache: .* writable by others"):
        _run(PIN)
    assert not trace.exists()


def test_an_environment_that_is_a_link_elsewhere_is_not_run(root, tmp_path):
    home, trace = _plant(root)
    home.rename(tmp_path / "elsewhere")
    home.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(RuntimeInstallError, match="is a symbolic link"):
        _run(PIN)
    assert not trace.exists()


def test_an_interpreter_linked_to_a_writable_file_is_not_run(root, tmp_path):
    home, trace = _plant(root)
    (home / "bin" / "python").rename(tmp_path / "python")
    os.chmod(tmp_path / "python", 0o777)
    (home / "bin" / "python").symlink_to(tmp_path / "python")
    with pytest.raises(RuntimeInstallError, match=r"bin/python is writable by others \(mode 777\)"):
        _run(PIN)
    assert not trace.exists()


def test_an_interpreter_linked_to_the_one_running_actprof_is_trusted(root):
    """As ``python -m venv`` makes them: ``bin/python`` links to the interpreter it was made from."""
    home, _ = _plant(root)
    (home / "bin" / "python").unlink()
    (home / "bin" / "python").symlink_to(Path(getattr(sys, "_base_executable", sys.executable)).resolve())
    assert environment_for(PIN).python == home / "bin" / "python"


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="giving a file away needs root")
def test_an_environment_of_another_user_is_not_run(root):
    home, trace = _plant(root)
    os.chown(home / MARKER, 1, 1)
    with pytest.raises(RuntimeInstallError, match="owned by another user"):
        _run(PIN)
    assert not trace.exists()


def test_the_runtime_cache_is_created_private(root, monkeypatch):
    monkeypatch.setenv("ACTPROF_OFFLINE", "1")
    with pytest.raises(RuntimeInstallError):
        environment_for(PIN)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


# --- installing: offline, venv and pip failures, the umask ---------------------------------------------------


def test_offline_a_release_not_installed_yet_is_refused_in_one_line(root, monkeypatch):
    monkeypatch.setenv("ACTPROF_OFFLINE", "1")
    with pytest.raises(RuntimeInstallError) as caught:
        environment_for(PIN)
    assert str(caught.value) == (
        f"onnxruntime==1.20.1 is not installed yet and ACTPROF_OFFLINE=1 keeps actprof off the package index; "
        f"run once without ACTPROF_OFFLINE=1 to install it into {root}"
    )
    assert list(root.iterdir()) == []


def test_offline_an_installed_release_is_used(root, monkeypatch):
    monkeypatch.setenv("ACTPROF_OFFLINE", "1")
    home, _ = _plant(root)
    assert environment_for(PIN).python == home / "bin" / "python"


def _installer(tmp_path: Path, monkeypatch, *, venv: str, pip: str) -> None:
    """This interpreter, as environments runs it for ``-m venv`` and ``-m pip``, replaced by a script."""
    script = tmp_path / "fake-python"
    script.write_text(f'#!/bin/sh\nif [ "$2" = venv ]; then\n{venv}\nfi\n{pip}\n')
    script.chmod(0o700)
    monkeypatch.delenv("ACTPROF_OFFLINE", raising=False)
    monkeypatch.setattr(environments.sys, "executable", str(script))


MAKE_VENV = 'mkdir -p "$4/bin" && printf "#!/bin/sh\\n" > "$4/bin/python" && chmod 775 "$4/bin/python"\n'
MAKE_VENV += 'echo "home = /usr/bin" > "$4/pyvenv.cfg"\nexit 0'


def test_a_venv_that_fails_is_one_line(root, tmp_path, monkeypatch):
    said = "Error: Command '['/x/bin/python', '-m', 'ensurepip']' returned non-zero exit status 1."
    _installer(tmp_path, monkeypatch, venv=f'echo "{said}" >&2\nexit 1', pip="exit 0")
    with pytest.raises(RuntimeInstallError) as caught:
        environment_for(PIN)
    assert str(caught.value) == (
        f"cannot make an environment for onnxruntime==1.20.1: python -m venv says: {said}; check that "
        "`python -m venv` works here (Debian and Ubuntu need the python3-venv package)"
    )
    assert list(root.iterdir()) == []  # nothing half-made left behind


def test_a_pip_that_fails_is_one_line(root, tmp_path, monkeypatch):
    pip = 'echo "ERROR: No matching distribution found for onnxruntime==1.20.1" >&2\nexit 1'
    _installer(tmp_path, monkeypatch, venv=MAKE_VENV, pip=pip)
    with pytest.raises(RuntimeInstallError, match="no such release") as caught:
        environment_for(PIN)
    assert "\n" not in str(caught.value)
    assert list(root.iterdir()) == []


def test_an_environment_made_under_umask_002_is_trusted(root, tmp_path, monkeypatch):
    """venv and pip honour the umask; Debian and Ubuntu give users 002, which leaves everything group-writable.
    actprof takes write access from everyone else before the environment is renamed into place."""
    _installer(tmp_path, monkeypatch, venv=MAKE_VENV, pip="exit 0")
    previous = os.umask(0o002)
    try:
        environment = environment_for(PIN)
    finally:
        os.umask(previous)
    home = environment.python.parents[1]
    for path in (home, home / "bin", environment.python, home / MARKER, home / "pyvenv.cfg"):
        assert not path.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH), path


# --- actprof's code on a worker's path: a link, or a copy where links are not allowed ------------------------


def test_without_symbolic_links_the_code_is_copied(root, tmp_path, monkeypatch):
    """Windows without Developer Mode refuses symlink_to: the workers import a copy of actprof instead."""

    def refused(*_args, **_kwargs):
        raise OSError(1314, "A required privilege is not held by the client")

    monkeypatch.setattr(Path, "symlink_to", refused)
    code = environments._code_dir(environments._trusted_root())
    assert code.name.startswith("copy-") and (code / "actprof" / "measure" / "worker.py").is_file()
    assert not list(code.rglob("__pycache__"))
    found = subprocess.run(
        [sys.executable, "-s", "-c", "import actprof; print(actprof.__file__)"],
        env={**os.environ, "PYTHONPATH": str(code)},
        cwd=tmp_path,  # not this checkout, which -c would put first on the path
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(found.stdout.strip()).parent == code / "actprof"
    made = (code / "actprof").stat().st_mtime_ns
    assert environments._code_dir(environments._trusted_root()) == code  # reused, not copied again
    assert (code / "actprof").stat().st_mtime_ns == made


def test_a_copy_that_fails_is_one_line(root, monkeypatch):
    def refused(*_args, **_kwargs):
        raise OSError(1314, "A required privilege is not held by the client")

    def full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "symlink_to", refused)
    monkeypatch.setattr(environments.shutil, "copytree", full)
    with pytest.raises(RuntimeInstallError) as caught:
        environments._code_dir(environments._trusted_root())
    assert str(caught.value) == (
        f"cannot copy actprof's code into {root / 'code'}: No space left on device; free space there or set "
        "ACTPROF_RUNTIME_DIR to a writable directory"
    )
    assert not [p for p in (root / "code").iterdir() if p.name.startswith(".copy-")]  # nothing half-made left
