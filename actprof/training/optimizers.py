"""The optimizer a TrainConfig names, built for a set of parameters: one home for Adam and SGD's settings."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from actprof.settings.training import TrainConfig


def optimizer_for(params: Iterable[torch.nn.Parameter], config: TrainConfig, *, fused: bool) -> torch.optim.Optimizer:
    """``config``'s optimizer at its rate. ``fused``: torch's fused Adam (actprof's trainer; the same update up to
    rounding); otherwise torch's default implementation, as a user's script gets it."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    return torch.optim.Adam(params, lr=config.lr, fused=fused or None)
