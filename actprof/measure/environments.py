"""An isolated Python environment per runtime release, created once and cached.

``--runtime-versions onnxruntime==1.20.1`` needs that release importable next to actprof's own code but
without actprof's installed runtime: each release gets a virtual environment of its own (``python -m venv``)
into which this interpreter's pip installs the pinned runtime together with the numpy and onnx that run
actprof here, pinned to the same versions, so only the runtime differs (where a release cannot live with
them, pip chooses them, and the record says which ran). pip installs from the package
index as it installs any dependency (the user's pip configuration: index, certificates, constraints), and
once an environment exists nothing is downloaded again (offline runs reuse it).

An environment is built in a temporary directory and renamed into place when its install succeeded, so a
failed or interrupted install never leaves a half-made environment that a later run would trust.

Running an environment's interpreter runs whatever is in it, so nothing is run on trust (as the compiled
kernels are loaded, ``schema.trust``): the cache is created private (0700), and before each use the cache, the
environment, its marker, its ``pyvenv.cfg`` (which names the interpreter's standard library) and its
interpreter must be this user's and writable by no one else; otherwise the build is refused in one line that
says what to delete. ``ACTPROF_OFFLINE=1`` refuses a release that is not installed yet instead of reaching
for the package index. Every failure of venv or pip is one ``RuntimeInstallError`` line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from actprof.errors import RuntimeInstallError
from actprof.schema.storage import user_cache
from actprof.schema.trust import private_dir, untrusted, untrusted_target
from actprof.settings.versions import RuntimePin

MARKER = "actprof-environment.json"
COMPANION_FLOORS = ("numpy>=1.24", "onnx>=1.16")  # what actprof's worker code needs, where ours cannot be had
INSTALL_TIMEOUT_S = 900


@dataclass(frozen=True)
class Environment:
    """Where a runtime build's worker runs: an interpreter, and the directory actprof's code is put on its
    path from (None: the interpreter is this one, actprof is already importable)."""

    pin: RuntimePin
    python: Path
    code: Path | None


def cache_root() -> Path:
    return user_cache("runtimes", override="ACTPROF_RUNTIME_DIR")


def environment_for(pin: RuntimePin, *, say=lambda _m: None) -> Environment:
    """The environment ``pin``'s worker runs in, installing it the first time it is asked for; refused in one
    line when it cannot be trusted."""
    if pin.version is None:
        return Environment(pin, Path(sys.executable), None)
    root = _trusted_root()
    home = root / _env_name(pin)
    if not (home / MARKER).is_file():
        if os.environ.get("ACTPROF_OFFLINE") == "1":
            raise RuntimeInstallError(
                f"{pin.requirement} is not installed yet and ACTPROF_OFFLINE=1 keeps actprof off the package "
                f"index; run once without ACTPROF_OFFLINE=1 to install it into {root}"
            )
        say(f"installing {pin.requirement} into its own environment (once; cached in {root})")
        _create(pin, home, say)
    _check_environment(pin, home)
    return Environment(pin, _python_of(home), _code_dir(root))


# --- trust ----------------------------------------------------------------------------------------------------


def _untrusted(path: Path) -> str | None:
    """``schema.trust.untrusted``, except where there are no POSIX owners (Windows): there nothing can be checked,
    and the cache is in the user's profile, private by its default permissions. (The kernels refuse instead, as
    they have torch's layers to fall back on; refusing here would leave no way to compare releases at all.)"""
    return untrusted(path) if hasattr(os, "getuid") else None


def _trusted_root() -> Path:
    return _checked_private(cache_root(), "refusing to use the runtime cache: {reason}; " + _ELSEWHERE)


def _checked_private(path: Path, refusal: str) -> Path:
    """``path`` created private and checked; refused in one line (``refusal``, its ``{reason}`` filled in) when
    it cannot be made or someone else can write it."""
    try:
        private_dir(path)
    except OSError as exc:
        raise RuntimeInstallError(
            f"cannot create {path}: {exc.strerror}; set ACTPROF_RUNTIME_DIR to a directory of yours"
        ) from None
    if (reason := _untrusted(path)) is not None:
        raise RuntimeInstallError(refusal.replace("{reason}", reason))
    return path


_ELSEWHERE = "set ACTPROF_RUNTIME_DIR to a directory only you can write"


def _check_environment(pin: RuntimePin, home: Path) -> None:
    """Refuse ``home`` unless it, what its interpreter reads first, and the interpreter can be trusted."""
    python = _python_of(home)
    for path in (home, home / MARKER, home / "pyvenv.cfg", python.parent):
        if (reason := _untrusted(path)) is not None:
            raise _refused(pin, home, reason)
    if (reason := _interpreter_untrusted(python)) is not None:
        raise _refused(pin, home, reason)


def _interpreter_untrusted(python: Path) -> str | None:
    """A venv's interpreter links to the one it was made from (root's, or another user's shared install):
    trusted where the link (in a checked directory) leads to the interpreter running actprof, or to a file of
    this user's or root's that no one else can write."""
    if not python.is_symlink() or not hasattr(os, "getuid"):
        return _untrusted(python)
    with contextlib.suppress(OSError):
        if python.resolve().samefile(Path(getattr(sys, "_base_executable", sys.executable)).resolve()):
            return None
    return untrusted_target(python)


def _refused(pin: RuntimePin, home: Path, reason: str) -> RuntimeInstallError:
    return RuntimeInstallError(
        f"refusing to run the environment of {pin.requirement}: {reason}; delete {home} (the next run installs it "
        f"again) or {_ELSEWHERE}"
    )


# --- installing -----------------------------------------------------------------------------------------------


def _env_name(pin: RuntimePin) -> str:
    """One environment per runtime release, Python, and the numpy/onnx it was made with."""
    numpy, onnx = _companions()
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    return f"{pin.package}-{pin.version}-{python}-numpy{numpy}-onnx{onnx}"


def _companions() -> tuple[str, str]:
    from importlib.metadata import version

    return version("numpy"), version("onnx")


def _python_of(home: Path) -> Path:
    return home / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _create(pin: RuntimePin, home: Path, say) -> None:
    try:
        building = Path(tempfile.mkdtemp(prefix=f".{home.name}.", dir=home.parent))
    except OSError as exc:
        raise _disk_failure(pin, home, exc) from None
    try:
        _make_venv(pin, building)
        numpy, onnx = _companions()
        requirements = [pin.requirement, f"numpy=={numpy}", f"onnx=={onnx}"]
        failure = _pip_install(pin, _python_of(building), requirements)
        if failure and "ResolutionImpossible" in failure:
            # e.g. OpenVINO 2024.6 needs numpy < 2.2: let pip choose the companions (each build's are recorded)
            say(f"{pin.requirement} does not install beside numpy {numpy} and onnx {onnx}; letting pip choose them")
            requirements = [pin.requirement, *COMPANION_FLOORS]
            failure = _pip_install(pin, _python_of(building), requirements)
        if failure:
            raise RuntimeInstallError(install_failure(pin, failure))
        (building / MARKER).write_text(json.dumps({"requirements": requirements}, indent=1))
        _seal(building)
        _move_into_place(building, home)
    except OSError as exc:  # a full disk, a cache made read-only under us
        raise _disk_failure(pin, home, exc) from None
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _disk_failure(pin: RuntimePin, home: Path, exc: OSError) -> RuntimeInstallError:
    return RuntimeInstallError(
        f"cannot install {pin.requirement} into {home.parent}: {exc.strerror or exc}; free space there or set "
        "ACTPROF_RUNTIME_DIR to a writable directory"
    )


def _make_venv(pin: RuntimePin, building: Path) -> None:
    command = [sys.executable, "-m", "venv", "--without-pip", str(building)]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        said = _last_line(exc.stderr or exc.stdout or "", fallback=f"exit code {exc.returncode}")
        raise RuntimeInstallError(
            f"cannot make an environment for {pin.requirement}: python -m venv says: {said}; check that "
            "`python -m venv` works here (Debian and Ubuntu need the python3-venv package)"
        ) from None
    except subprocess.TimeoutExpired:
        raise RuntimeInstallError(
            f"making an environment for {pin.requirement} took over {INSTALL_TIMEOUT_S} s; "
            f"check that {building.parent} is on a local, writable disk"
        ) from None


def _seal(tree: Path) -> None:
    """No one else may write anything in ``tree``: what venv and pip made under a umask of 002 (the default
    for users on Debian and Ubuntu) is group-writable, and would be refused before every run."""
    for path in (tree, *tree.rglob("*")):
        if not path.is_symlink():
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) & ~(stat.S_IWGRP | stat.S_IWOTH))


def _last_line(text: str, *, fallback: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else fallback


def _move_into_place(building: Path, home: Path) -> None:
    """Rename the finished environment into place; a concurrent run that finished first wins (same
    contents). A venv's scripts name their interpreter by absolute path, but its ``bin/python`` is a
    link that works from anywhere, and the worker only ever runs ``bin/python``."""
    try:
        os.rename(building, home)
    except OSError:
        if not (home / MARKER).is_file():
            raise


def _pip_install(pin: RuntimePin, python: Path, requirements: list[str]) -> str | None:
    """None once installed, else what pip wrote to stderr."""
    command = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check", "--no-input"]
    command += ["install", "--quiet", *requirements]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except OSError as exc:  # this interpreter cannot be run again (removed, or out of processes)
        raise RuntimeInstallError(f"cannot run pip to install {pin.requirement}: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise RuntimeInstallError(
            f"installing {pin.requirement} took over {INSTALL_TIMEOUT_S} s; check the package index is reachable"
        ) from None
    if done.returncode == 0:
        return None
    return done.stderr or "pip failed without a word"


def install_failure(pin: RuntimePin, stderr: str) -> str:
    """pip's failure in one line that names the fix."""
    here = f"Python {platform.python_version()} on {sys.platform} {platform.machine()}"
    if "No module named pip" in stderr:
        return f"{pin.requirement} cannot be installed: {sys.executable} has no pip; add it (python -m ensurepip)"
    if "no such option: --python" in stderr:
        return (
            f"{pin.requirement} cannot be installed: this pip is older than 22.3 and cannot install into another "
            "environment; upgrade it (python -m pip install -U pip)"
        )
    if re.search(r"NewConnectionError|Failed to establish|Temporary failure in name resolution", stderr):
        return f"{pin.requirement} is not installed yet and the package index cannot be reached; connect once"
    if re.search(r"No matching distribution found|Could not find a version that satisfies", stderr):
        return (
            f"{pin.requirement} cannot be installed here: the package index has no such release for {here}; "
            f"`pip index versions {pin.package}` lists those that exist"
        )
    errors = [line.strip() for line in stderr.splitlines() if line.strip().startswith("ERROR")]
    cause = errors[-1] if errors else (stderr.strip().splitlines() or ["no output"])[-1]
    return f"{pin.requirement} cannot be installed here ({here}): pip says: {cause}"


# --- actprof's code, for the workers -------------------------------------------------------------------------


def _code_dir(root: Path) -> Path:
    """A directory holding only ``actprof`` (a link to this package): on a worker's path it makes actprof's
    code importable without the rest of this environment's site-packages (its own runtime, torch)."""
    package = Path(__file__).resolve().parents[1]
    home = _private(root / "code" / hashlib.sha256(str(package).encode()).hexdigest()[:12])
    link = home / "actprof"
    if link.is_symlink() and link.resolve() == package:
        return home
    temporary = home / f".actprof.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    try:
        temporary.symlink_to(package, target_is_directory=True)
    except OSError:  # Windows without Developer Mode (or a file system without links): a copy instead
        return _code_copy(root, package)
    os.replace(temporary, link)
    return home


def _code_copy(root: Path, package: Path) -> Path:
    """A copy of this package, named by its contents (a later actprof gets a copy of its own)."""
    home = root / "code" / f"copy-{_contents_digest(package)}"
    if not (home / "actprof").is_dir():
        try:
            _copy_into_place(package, home)
        except OSError as exc:
            raise RuntimeInstallError(
                f"cannot copy actprof's code into {home.parent}: {exc.strerror or exc}; free space there or set "
                "ACTPROF_RUNTIME_DIR to a writable directory"
            ) from None
    return _private(home)


def _copy_into_place(package: Path, home: Path) -> None:
    """Copied into a temporary directory and renamed into place, so a worker never imports a half-made copy."""
    building = Path(tempfile.mkdtemp(prefix=f".{home.name}.", dir=home.parent))
    try:
        shutil.copytree(package, building / "actprof", ignore=shutil.ignore_patterns("__pycache__"))
        _seal(building)
        os.replace(building, home)
    except OSError:
        if not (home / "actprof").is_dir():  # else a concurrent run made the same copy first
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _contents_digest(package: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _private(directory: Path) -> Path:
    """``directory`` (and ``code`` above it) made private and checked: a worker imports actprof from it."""
    for path in (directory.parent, directory):
        refusal = "refusing to put actprof's code on a worker's path: {reason}; "
        _checked_private(path, refusal + f"delete {path} (it is made again) or {_ELSEWHERE}")
    return directory
