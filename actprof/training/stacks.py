"""The training step as each stack users train with runs it, for the same network and recipe.

- ``eager``: the network exactly as a user writes it — ``nn.Conv2d``, the activation's module, ``nn.MaxPool2d``,
  ``nn.Dropout`` (``nn.AlphaDropout`` for SELU), ``nn.Flatten``, ``nn.Linear`` in an ``nn.Sequential``, NCHW —
  with the run's optimizer (``torch.optim.Adam`` or ``SGD``, its momentum and Nesterov as recorded) in
  torch's default implementation, the same batch and the same autocast precision;
- ``compile``: the same module through ``torch.compile`` (Inductor), its compile time counted apart;
- ``actprof``: actprof's fast trainer (``loop.Stepper``): the same function, computed with the exact rewrites
  and kernels that make experiments cheap.

The three compute one function (``plain_network`` against ``model.SeedCNN`` is tested), so a run's steps to an
accuracy hold for any of them; what each stack costs per step prices those steps in seconds.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import torch
from torch import nn

from actprof import activations
from actprof.errors import UsageError
from actprof.schema.steps import StackIdentity
from actprof.settings.networks import NetworkSpec
from actprof.settings.training import TRAIN_STACKS, ModelConfig, TrainConfig, optimizer_words
from actprof.training.identity import trainer_identity
from actprof.training.loop import Stepper
from actprof.training.model import DeepCNN, build, initialize
from actprof.training.networks import MLP
from actprof.training.optimizers import optimizer_for

STACKS = TRAIN_STACKS


def plain_network(config: ModelConfig) -> nn.Module:
    """The network a ModelConfig names, as a user writes it with torch's layers (initialized the same way).
    A user's own network already is one: it is built as it trains."""
    spec = NetworkSpec.parse(config.architecture)
    act = activations.get(config.activation)
    if spec.kind == "file":
        return build(config)
    if spec.kind == "mlp":
        network = MLP(config, spec.widths, act, plain=True)
        initialize(network, config.init)
        return network

    def site() -> nn.Module:
        return act.module(config.param)

    def dropout() -> nn.Module:
        return nn.AlphaDropout(config.dropout) if config.alpha_dropout else nn.Dropout(config.dropout)

    if spec.kind == "deep":
        layers: list[nn.Module] = []
        channels = 1
        for width in DeepCNN.WIDTHS:
            layers += [nn.Conv2d(channels, width, 3, padding=1), site(), nn.Conv2d(width, width, 3, padding=1)]
            layers += [site(), nn.MaxPool2d(2), dropout()]
            channels = width
        layers += [nn.Flatten(), nn.Linear(channels * 3 * 3, 256), site(), nn.Linear(256, 10)]
    else:
        layers = [nn.Conv2d(1, 32, 3), site(), nn.MaxPool2d(2), dropout(), nn.Conv2d(32, 64, 3), site()]
        layers += [nn.MaxPool2d(2), dropout(), nn.Flatten(), nn.Linear(64 * 5 * 5, 256), site(), nn.Linear(256, 10)]
    network = nn.Sequential(*layers)
    initialize(network, config.init)
    return network


@dataclass
class StackStep:
    """One stack's training step for one network, ready to time, and what ran."""

    stepper: Stepper
    identity: StackIdentity
    channels_last: bool  # the input layout the stack takes


def step_for(stack: str, model: ModelConfig, train: TrainConfig, device: torch.device) -> StackStep:
    """The training step of ``stack`` for the network ``model`` at ``train``'s batch, rate and precision
    (already resolved: ``fp32`` or ``bf16``). ``compile`` compiles on its first step."""
    if stack == "actprof":
        stepper = Stepper.of(model, train, device)
        identity = trainer_identity(stepper.model, train, device)
        return StackStep(stepper, identity, channels_last=identity.channels_last)
    check_stack(stack, device)
    network = plain_network(model).to(device)
    optimizer = optimizer_for(network.parameters(), train, fused=False)
    if stack == "compile":
        network = torch.compile(network)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=train.precision == "bf16")
    stepper = Stepper(model=network, optimizer=optimizer, autocast=autocast, loss_fn=nn.CrossEntropyLoss())
    identity = StackIdentity(
        stack=stack,
        device=device.type,
        precision=train.precision,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        optimizer=f"{optimizer_words(train)} (torch's default implementation)",
    )
    return StackStep(stepper, identity, channels_last=False)


def check_stack(stack: str, device: torch.device) -> None:
    """Refuse, in one line, a stack that cannot run here."""
    if stack not in STACKS:
        raise UsageError(f"unknown --train-stack {stack!r}; choose from: {', '.join(STACKS)}")
    if stack == "compile" and device.type == "cpu" and shutil.which("g++") is None and shutil.which("c++") is None:
        raise UsageError(
            "--train-stack compile: torch.compile's CPU backend (Inductor) needs a C++ compiler, and none is on "
            "the PATH; install one (g++) or price on eager"
        )
