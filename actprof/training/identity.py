"""Which of the fast trainer's speed-ups ran: what a run's seconds (and its step time) are a property of."""

from __future__ import annotations

import torch
from torch import nn

from actprof.schema.steps import StackIdentity
from actprof.settings.training import TrainConfig, optimizer_words
from actprof.training.kernels import build
from actprof.training.model import FastPaths


def trainer_identity(model: nn.Module, train: TrainConfig, device: torch.device) -> StackIdentity:
    """actprof's trainer as it runs ``model`` (in its training form) here: kernels on or off (on only for a
    network they serve), their vector width and threads, pool-first, the lean form, the optimizer, the
    precision (``train``'s, resolved), the device and threads."""
    kernels = device.type == "cpu" and isinstance(model, FastPaths) and build.library() is not None
    return StackIdentity(
        stack="actprof",
        device=device.type,
        precision=train.precision,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        optimizer=optimizer_words(train) + (" (fused)" if train.optimizer == "adam" else ""),
        kernels=kernels,
        lanes=build.LANES if kernels else 0,
        openmp=kernels and build.openmp(),
        pool_first=bool(getattr(model, "pool_first", False)),
        lean=bool(getattr(model, "lean", False)),
        channels_last=isinstance(model, FastPaths),
    )
