"""Which of the fast trainer's speed-ups ran: what a run's seconds (and its step time) are a property of."""

from __future__ import annotations

import torch
from torch import nn

from actprof.schema.steps import StackIdentity
from actprof.training.kernels import build


def trainer_identity(model: nn.Module, precision: str, device: torch.device) -> StackIdentity:
    """actprof's trainer as it runs ``model`` (in its training form) here: kernels on or off, their vector
    width and threads, pool-first, the lean form, the precision, the device and threads."""
    kernels = device.type == "cpu" and build.library() is not None
    return StackIdentity(
        stack="actprof",
        device=device.type,
        precision=precision,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        optimizer="Adam (fused)",
        kernels=kernels,
        lanes=build.LANES if kernels else 0,
        openmp=kernels and build.openmp(),
        pool_first=bool(getattr(model, "pool_first", False)),
        lean=bool(getattr(model, "lean", False)),
        channels_last=True,
    )
