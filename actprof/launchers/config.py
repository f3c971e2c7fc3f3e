"""Where jobs run: here, one after another, or as Ray tasks; and where the profile stage runs."""

from __future__ import annotations

from dataclasses import dataclass

from actprof.settings.parse import require

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Placement:
    """Where training tasks go on a Ray cluster: its address (None: start or join a local one), the CPUs each
    task reserves (0: a whole node's) and whether it needs a GPU."""

    address: str | None = None
    cpus_per_task: int = 0
    gpu: bool = False

    def __post_init__(self) -> None:
        require(self.cpus_per_task >= 0, f"--cpus-per-task must be 0 (a whole node) or more, got {self.cpus_per_task}")


@dataclass(frozen=True)
class RemoteProfile:
    """Profile on the Ray node the user selects by a custom resource (``ray start --resources``)."""

    resource: str
    address: str | None = None

    def __post_init__(self) -> None:
        require(
            bool(self.resource.strip()) and self.resource == self.resource.strip(),
            "--profile-on needs the name of a custom Ray resource, e.g. --profile-on profiler",
        )
