"""The training-step stage: each trained activation's step timed on each stack, written to ``steps.json``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from actprof.data.mnist import MNIST
from actprof.pipeline.progress import QUIET, Reporter
from actprof.schema.steps import StepCostRecord
from actprof.schema.storage import find_models, write_json
from actprof.settings.parse import require
from actprof.settings.training import TrainConfig

STEPS_FILE = "steps.json"


def time_steps(
    models: Path,
    names: Sequence[str] | None,
    stacks: Sequence[str],
    *,
    baseline: str,
    out: Path,
    mnist: MNIST,
    reporter: Reporter = QUIET,
) -> StepCostRecord:
    """Time the training step of the models found in ``models`` on ``stacks``; write ``out/steps.json``."""
    from actprof.measure.steps import time_steps as measure

    records = [record for _, record in find_models(models, list(names) if names else None)]
    with reporter.working("timing the training step") as status:
        record = measure(records, stacks, mnist, baseline=baseline, say=status)
    write_json(Path(out) / STEPS_FILE, record)
    return record


def check_stacks(stacks: Sequence[str], train: TrainConfig) -> None:
    """Refuse, before anything slow, a stack that cannot run here (an unknown one, compile without a C++
    compiler, a CUDA device without a GPU)."""
    from actprof.training.loop import resolve_device
    from actprof.training.stacks import check_stack

    require(bool(stacks), "--stacks is empty; choose from: eager, compile, actprof")
    device = resolve_device(train.device)
    for stack in stacks:
        check_stack(stack, device)
