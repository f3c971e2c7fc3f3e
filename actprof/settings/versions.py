"""``--runtime-versions``: which releases of one runtime are profiled side by side.

``onnxruntime==1.20.1,onnxruntime==1.21.1,onnxruntime`` names three builds of ONNX Runtime: two releases, each
installed into an environment of its own, and (a bare name) the one installed beside actprof. Every build
serves the same actprof backend (``PACKAGES``), so only the runtime differs between the columns. A build
named twice runs in two workers: an A/A control, whose change should be 1.00× within its interval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from actprof.errors import UsageError

# The runtime packages a version can be pinned of, and the --provider each one's builds are profiled as.
PACKAGES = {"onnxruntime": "cpu", "openvino": "openvino"}
MAX_VERSIONS = 6  # each is a worker process with its own sessions; more would not fit the rounds' time
_VERSION = re.compile(r"\d+(\.\d+){0,3}((a|b|rc)\d+)?(\.post\d+)?")


@dataclass(frozen=True)
class RuntimePin:
    """One build of a runtime: ``version`` None is the one installed beside actprof."""

    package: str
    version: str | None = None
    copy: int = 0  # a build named again: a second worker of the same build (an A/A control of the method)

    def __post_init__(self) -> None:
        if self.package not in PACKAGES:
            raise UsageError(
                f"--runtime-versions: unknown package {self.package!r}; choose from: {', '.join(PACKAGES)} "
                "(e.g. onnxruntime==1.20.1)"
            )
        if self.version is not None and not _VERSION.fullmatch(self.version):
            raise UsageError(
                f"--runtime-versions: {self.version!r} is not a release number of {self.package} (e.g. 1.20.1)"
            )

    @property
    def provider(self) -> str:
        return PACKAGES[self.package]

    @property
    def label(self) -> str:
        """How reports name the build: ``onnxruntime 1.20.1``, or ``onnxruntime (installed)``."""
        return f"{self.package} {self.version or '(installed)'}" + (f" #{self.copy + 1}" if self.copy else "")

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}" if self.version else self.package


def parse_runtime_versions(spec: str) -> list[RuntimePin]:
    """Two or more builds of one runtime, as ``PACKAGE==VERSION`` (or a bare ``PACKAGE``: the installed one)."""
    items = [s.strip() for s in spec.split(",") if s.strip()]
    pins = [_pin(item) for item in items]
    if len(pins) < 2:
        raise UsageError(
            "--runtime-versions needs two or more builds to compare, e.g. onnxruntime==1.20.1,onnxruntime "
            "(a bare name is the one installed beside actprof)"
        )
    if len(pins) > MAX_VERSIONS:
        raise UsageError(f"--runtime-versions: at most {MAX_VERSIONS} builds at once, got {len(pins)}")
    packages = {p.package for p in pins}
    if len(packages) > 1:
        raise UsageError(
            f"--runtime-versions compares builds of one runtime, got {', '.join(sorted(packages))}; "
            "to compare runtimes use --provider cpu,openvino"
        )
    return [replace(p, copy=pins[:i].count(p)) for i, p in enumerate(pins)]


def _pin(item: str) -> RuntimePin:
    package, sep, version = item.partition("==")
    if not sep and any(c in item for c in "<>=!~ "):
        raise UsageError(f"--runtime-versions takes exact pins like onnxruntime==1.20.1, got {item!r}")
    package = package.strip().lower().replace("_", "-")
    if sep and not version.strip():
        raise UsageError(f"--runtime-versions: {item!r} has no version after '=='")
    return RuntimePin(package, version.strip() if sep else None)
