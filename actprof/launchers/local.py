"""The local launcher: every job of a sweep in this process, one after another, each saved as it finishes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from actprof.errors import ActprofError, TrainingDiverged
from actprof.training.sweep import Failure, Saved, StepCallback, run_job, save_diverged, save_run

if TYPE_CHECKING:
    from actprof.data.mnist import MNIST
    from actprof.schema.training import TrainJob


def run_local(
    todo: Sequence[TrainJob],
    data: MNIST,
    runs_dir: Path,
    *,
    on_step: Callable[[TrainJob], StepCallback | None] = lambda job: None,
) -> tuple[dict[str, Saved], list[Failure]]:
    """Run jobs one after another in this process, saving each as it finishes; failures are collected."""
    results: dict[str, Saved] = {}
    failures = []
    for job in todo:
        try:
            onnx_bytes, record = run_job(job, data, on_step=on_step(job))
        except TrainingDiverged as exc:
            failures.append(save_diverged(runs_dir, job, data.identity, str(exc)))
            continue
        except ActprofError as exc:
            failures.append(Failure(job, str(exc)))
            continue
        save_run(runs_dir, onnx_bytes, record)
        results[job.stem] = (onnx_bytes, record)
    return results, failures
