"""The environment recorded with every result: machine, versions, threads, providers."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from importlib import metadata

from actprof import __version__


@dataclass(frozen=True)
class Environment:
    actprof: str
    python: str
    platform: str
    cpu_model: str
    cpu_count: int
    versions: dict[str, str] = field(default_factory=dict)
    torch_threads: int | None = None
    ort_providers: list[str] = field(default_factory=list)  # compiled into the installed ORT build


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def capture() -> Environment:
    versions = {
        name: package_version(name)
        for name in ("torch", "onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu", "numpy")
    }
    versions = {k: v for k, v in versions.items() if v != "not installed"}
    torch_threads = None
    providers: list[str] = []
    try:
        import torch

        torch_threads = torch.get_num_threads()
    except ImportError:
        pass
    try:
        import onnxruntime as ort

        providers = list(ort.get_available_providers())
    except ImportError:
        pass
    return Environment(
        actprof=__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        cpu_model=cpu_model(),
        cpu_count=os.cpu_count() or 1,
        versions=versions,
        torch_threads=torch_threads,
        ort_providers=providers,
    )
