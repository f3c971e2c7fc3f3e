"""The training step's cost per activation on each stack, timed side by side like inference latency.

Each stack's steps for every activation are timed in interleaved rounds of their own (so the machine's drift
hits them alike), on one real batch of training images at the runs' batch size, precision, rate and device;
the ratio to the baseline's step is the median of per-round ratios with its 95% CI. Steps change the weights
they time (a few dozen Adam steps on one batch): the cost of a step does not depend on them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from actprof.data.mnist import MNIST, to_tensor, validation_split
from actprof.errors import UsageError
from actprof.measure import harness
from actprof.schema.steps import StackIdentity, StepCost, StepCostRecord
from actprof.schema.storage import header
from actprof.schema.training import ModelRecord
from actprof.training.loop import resolve_device, resolve_precision
from actprof.training.stacks import StackStep, check_stack, step_for

Say = Callable[[str], None]
MIN_TIME = 0.3  # seconds of timed steps per activation and stack, at least
# A step takes 20-200 ms. The median's order-statistic interval needs rounds: with 8 it is the whole range of
# the per-round ratios, with 15 it is their 4th to 12th (about the middle half).
MIN_ROUNDS = 15
WARM_UP_STEPS = 2  # the first steps pay one-time setup (oneDNN primitives, allocations): two, then steady


def time_steps(
    records: Sequence[ModelRecord],
    stacks: Sequence[str],
    mnist: MNIST,
    *,
    baseline: str | None,
    min_time: float = MIN_TIME,
    min_rounds: int = MIN_ROUNDS,
    say: Say = lambda _m: None,
) -> StepCostRecord:
    """Every trained activation's step on every stack; the activations as trained (rewrites share them)."""
    started = time.perf_counter()
    trained = [r for r in records if r.rewrite is None]
    first = trained[0].train
    device = resolve_device(first.config.device)
    for stack in stacks:
        check_stack(stack, device)
    config = first.config
    precision = resolve_precision(config.precision, device)
    batch = _batch(mnist, config.batch_size, config.val_fraction, device, precision)
    names = [r.name for r in trained]
    baseline = baseline if baseline in names else None
    identities: list[StackIdentity] = []
    costs: list[StepCost] = []
    for stack in stacks:
        say(f"training step on {stack}: {len(trained)} activations, batch {config.batch_size}")
        steps = {r.name: step_for(stack, r.train.model, _resolved(r, precision), device) for r in trained}
        compiled = _first_steps(steps, batch) if stack == "compile" else {}
        targets = {name: _target(step, batch) for name, step in steps.items()}
        rounds = harness.interleave(
            targets, min_seconds=min_time, min_runs=3, min_rounds=min_rounds, warm_up_runs=WARM_UP_STEPS
        )
        for name in names:
            ratio = harness.ratio(rounds, name, baseline) if baseline else None
            stats = harness.stats_from_ns(rounds.samples[name], batch=config.batch_size)
            costs.append(StepCost(name, stack, config.batch_size, stats, ratio, compiled.get(name)))
        identities.append(steps[baseline or names[0]].identity)
    return StepCostRecord(
        **header("steps"),
        architecture=first.model.architecture,
        batch=config.batch_size,
        baseline=baseline,
        stacks=identities,
        costs=costs,
        seconds=time.perf_counter() - started,
    )


def _resolved(record: ModelRecord, precision: str):
    from dataclasses import replace

    return replace(record.train.config, precision=precision)


def _batch(mnist: MNIST, size: int, val_fraction: float, device: torch.device, precision: str):
    """One batch of training images (the validation split held out) and its labels, in both layouts."""
    train_index, _ = validation_split(len(mnist.train_labels), fraction=val_fraction)
    chosen = train_index[:size]
    images = to_tensor(mnist.train_images[chosen]).to(device)
    if precision == "bf16":  # the fast trainer stages bf16 images under bf16 autocast
        staged = images.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    else:
        staged = images.contiguous(memory_format=torch.channels_last)
    labels = torch.from_numpy(mnist.train_labels[chosen].astype("int64")).to(device)
    return {"plain": images, "channels_last": staged, "labels": labels}


def _target(step: StackStep, batch) -> Callable[[], object]:
    x = batch["channels_last"] if step.channels_last else batch["plain"]
    y = batch["labels"]
    synchronize = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)

    def run() -> None:
        step.stepper.step(x, y)
        synchronize()  # a GPU step is timed to its end, not to its launch

    return run


def _first_steps(steps: dict[str, StackStep], batch) -> dict[str, float]:
    """Compile time: each model's first step (which compiles it) less a steady step after it."""
    spent = {}
    for name, step in steps.items():
        run = _target(step, batch)
        started = time.perf_counter()
        try:
            run()
        except Exception as exc:  # Inductor raises its own types, with the cause in the first line
            first_line = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise UsageError(f"--train-stack compile: torch.compile failed for {name} ({first_line[:160]})") from None
        first = time.perf_counter() - started
        started = time.perf_counter()
        run()
        spent[name] = max(first - (time.perf_counter() - started), 0.0)
    return spent
