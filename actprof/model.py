"""The seed CNN of the Keras ELU experiment, built only from a config that is saved with the result.

Conv2d(1→32, 3×3) → act → MaxPool 2 → Dropout .25 → Conv2d(32→64, 3×3) → act → MaxPool 2 → Dropout .25
→ Flatten → Linear(1600→256) → act → Linear(256→10)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from actprof import activations
from actprof.activations import Activation
from actprof.records import ModelConfig

ACT_LAYERS = ("act1", "act2", "act3")


def config_for(act: Activation, *, param: float | None = None, init: str | None = None) -> ModelConfig:
    """The config an activation's family needs, with the user's overrides applied."""
    return ModelConfig(
        activation=act.name,
        param=act.default_param if param is None else param,
        init=act.init if init is None else activations.check_init(init),
        alpha_dropout=act.alpha_dropout,
    )


class SeedCNN(nn.Module):
    def __init__(self, config: ModelConfig, act: Activation | None = None) -> None:
        super().__init__()
        self.config = config
        act = act or activations.get(config.activation)
        dropout = nn.AlphaDropout if config.alpha_dropout else nn.Dropout
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)
        self.act1 = act.module(config.param)
        self.pool1 = nn.MaxPool2d(2)
        self.drop1 = dropout(config.dropout)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.act2 = act.module(config.param)
        self.pool2 = nn.MaxPool2d(2)
        self.drop2 = dropout(config.dropout)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 5 * 5, 256)
        self.act3 = act.module(config.param)
        self.fc2 = nn.Linear(256, 10)
        initialize(self, config.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.pool1(self.act1(self.conv1(x))))
        x = self.drop2(self.pool2(self.act2(self.conv2(x))))
        return self.fc2(self.act3(self.fc1(self.flatten(x))))

    def weight_layers(self) -> dict[str, nn.Module]:
        return {"conv1": self.conv1, "conv2": self.conv2, "fc1": self.fc1, "fc2": self.fc2}


def initialize(model: nn.Module, init: str) -> None:
    """He (fan-in, normal) for the ReLU family, LeCun normal for SELU, Glorot uniform for sigmoid/tanh."""
    if init == "default":
        return  # PyTorch's own (Kaiming-uniform with a=√5): kept so users can compare
    for module in model.modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        if init == "he":
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif init == "lecun":
            fan_in = nn.init._calculate_correct_fan(module.weight, "fan_in")
            nn.init.normal_(module.weight, std=1.0 / math.sqrt(fan_in))
        elif init == "glorot":
            nn.init.xavier_uniform_(module.weight)
        else:
            raise ValueError(f"unknown init {init!r}")
        nn.init.zeros_(module.bias)
