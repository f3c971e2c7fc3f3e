"""The environment recorded with every result: machine, versions, threads, providers."""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from actprof import __version__


@dataclass(frozen=True)
class GpuInfo:
    name: str
    driver: str
    memory_mib: int


@dataclass(frozen=True)
class Environment:
    actprof: str
    python: str
    platform: str
    cpu_model: str
    cpu_count: int
    versions: dict[str, str] = field(default_factory=dict)
    torch_threads: int | None = None  # None: torch not loaded by the stage that recorded it
    ort_providers: list[str] = field(default_factory=list)  # compiled into ORT; [] where ORT was not loaded
    actprof_commit: str | None = None  # the git commit of actprof's source, where it runs from a checkout


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_features() -> str:
    """The CPU's feature flags as the kernel lists them (x86 "flags", Arm "Features"); "" if unknown."""
    return _cpuinfo("flags", "Features")


def _cpuinfo(*fields: str) -> str:
    """The value of the first /proc/cpuinfo line naming one of ``fields``; "" where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            line = next((line for line in fh if line.split(":", 1)[0].strip() in fields), "")
    except OSError:
        return ""
    return line.split(":", 1)[1].strip() if ":" in line else ""


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def capture() -> Environment:
    """Where this process runs. Threads and providers are read from torch and ORT only where this process
    has loaded them (a stage that loaded neither records none): importing torch just to ask cost
    ``actprof report`` ~1.4 s."""
    versions = {
        name: package_version(name)
        for name in ("torch", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu", "openvino", "executorch", "numpy")
    }
    versions = {k: v for k, v in versions.items() if v != "not installed"}
    torch = sys.modules.get("torch")
    ort = sys.modules.get("onnxruntime")
    torch_threads = torch.get_num_threads() if torch is not None else None
    providers = list(ort.get_available_providers()) if ort is not None else []
    return Environment(
        actprof=__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        cpu_model=cpu_model(),
        cpu_count=os.cpu_count() or 1,
        versions=versions,
        torch_threads=torch_threads,
        ort_providers=providers,
        actprof_commit=source_commit(),
    )


@functools.cache
def source_commit() -> str | None:
    """The commit checked out where actprof's own source lives: None for an installed package (even one inside
    some other repository, e.g. a venv in a project), or without git."""
    root = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != root:
        return None
    return lines[1] if re.fullmatch(r"[0-9a-f]{40,64}", lines[1]) else None


def gpu_info() -> GpuInfo | None:
    """The first NVIDIA GPU (name, driver, memory) from nvidia-smi; None without one."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        name, driver, memory = (s.strip() for s in out.splitlines()[0].split(","))
        return GpuInfo(name=name, driver=driver, memory_mib=int(float(memory)))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def physical_cores() -> int:
    """Physical cores this process may run on (SMT siblings counted once): ORT's default thread count,
    and the count OpenVINO is given so that both runtimes use the same number of threads."""
    cores = set()
    for cpu in sorted(usable_cpus()):
        topology = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topology}/physical_package_id") as p, open(f"{topology}/core_id") as c:
                cores.add((p.read().strip(), c.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return len(cores) or 1


def usable_cpus() -> set[int]:
    """The logical CPUs this process may run on: its affinity mask where the platform has one (Linux),
    else every CPU the machine has (macOS and Windows have no ``os.sched_getaffinity``)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        try:
            return set(affinity(0))
        except OSError:
            pass
    return set(range(os.cpu_count() or 1))
