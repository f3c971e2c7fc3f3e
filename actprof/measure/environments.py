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
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from actprof.errors import RuntimeInstallError
from actprof.schema.storage import user_cache
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
    """The environment ``pin``'s worker runs in, installing it the first time it is asked for."""
    if pin.version is None:
        return Environment(pin, Path(sys.executable), None)
    home = cache_root() / _env_name(pin)
    if not (home / MARKER).is_file():
        say(f"installing {pin.requirement} into its own environment (once; cached in {home.parent})")
        _create(pin, home, say)
    return Environment(pin, _python_of(home), _code_dir())


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
    home.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{home.name}.", dir=home.parent))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(building)], check=True, capture_output=True)
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
        _move_into_place(building, home)
    finally:
        shutil.rmtree(building, ignore_errors=True)


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


def _code_dir() -> Path:
    """A directory holding only ``actprof`` (a link to this package): on a worker's path it makes actprof's
    code importable without the rest of this environment's site-packages (its own runtime, torch)."""
    package = Path(__file__).resolve().parents[1]
    home = cache_root() / "code" / hashlib.sha256(str(package).encode()).hexdigest()[:12]
    link = home / "actprof"
    if link.is_symlink() and link.resolve() == package:
        return home
    home.mkdir(parents=True, exist_ok=True)
    temporary = home / f".actprof.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(package, target_is_directory=True)
    os.replace(temporary, link)
    return home
