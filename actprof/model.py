"""The networks actprof trains, built only from a config that is saved with the result.

``seed``: the CNN of the Keras ELU experiment, three activation sites:
Conv2d(1→32, 3×3) → act → MaxPool 2 → Dropout → Conv2d(32→64, 3×3) → act → MaxPool 2 → Dropout
→ Flatten → Linear(1600→256) → act → Linear(256→10)

``deep``: a plain CNN with six convolutions and no batch norm — the setting of the ELU paper's mean-shift
argument (nothing re-centres the activations between layers), seven activation sites:
3 × [Conv2d(3×3, pad 1) → act → Conv2d(3×3, pad 1) → act → MaxPool 2 → Dropout] with 16, 32, 64 channels
(28 → 14 → 7 → 3 pixels) → Flatten → Linear(576→256) → act → Linear(256→10)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from actprof import activations
from actprof.activations import Activation
from actprof.records import ModelConfig

ACT_LAYERS = ("act1", "act2", "act3")  # the seed CNN's activation sites
DROPOUT = 0.25  # the seed recipe's dropout rate
# Alpha dropout's rate for the SELU family: the SELU paper suggests 0.05–0.1; at the seed's 0.25 SELU
# reached 46–50% test accuracy after one epoch on the bundled sample against 90–92% without dropout.
ALPHA_DROPOUT = 0.05


def config_for(
    act: Activation,
    *,
    param: float | None = None,
    init: str | None = None,
    dropout: float | None = None,
    alpha_dropout: float | None = None,
    architecture: str = "seed",
) -> ModelConfig:
    """The config an activation's family needs, with the user's overrides applied.

    ``dropout`` sets the rate of plain dropout, ``alpha_dropout`` the rate for families that need alpha
    dropout (SELU); each applies only to its own families.
    """
    rate = (ALPHA_DROPOUT if alpha_dropout is None else alpha_dropout) if act.alpha_dropout else dropout
    return ModelConfig(
        activation=act.name,
        param=act.default_param if param is None else param,
        init=act.init if init is None else activations.check_init(init),
        dropout=DROPOUT if rate is None else rate,
        alpha_dropout=act.alpha_dropout,
        architecture=architecture,
    )


def build(config: ModelConfig) -> SeedCNN | DeepCNN:
    """The network a config names."""
    return DeepCNN(config) if config.architecture == "deep" else SeedCNN(config)


def activation_sites(architecture: str) -> int:
    """How many activation sites the network has: each exports to one activation node."""
    return len(DeepCNN.ACT_LAYERS if architecture == "deep" else ACT_LAYERS)


def _keep_mask(x: torch.Tensor, threshold: int) -> torch.Tensor:
    """Bernoulli(1 − threshold/256) keep decisions shaped like ``x``, four per 32 random bits.

    ``bernoulli_`` draws one random number per element and was 30% of a training step on 2 cores;
    random bytes are about 8x cheaper and give the same distribution when p is a multiple of 1/256.
    """
    words = torch.empty((x.numel() + 3) // 4, dtype=torch.int32, device=x.device).random_(-(2**31), 2**31)
    draws = words.view(torch.uint8)[: x.numel()]
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        n, c, h, w = x.shape
        draws = draws.view(n, h, w, c).permute(0, 3, 1, 2)  # the same memory order as x
    else:
        draws = draws.view(x.shape)
    return (draws >= threshold).to(x.dtype)


class ByteDropout(nn.Module):
    """``nn.Dropout`` (or ``nn.AlphaDropout`` with ``alpha=True``) with the keep mask drawn from random
    bytes: the same distribution and scaling, a fraction of the cost. Identity in eval mode, so the
    exported graph is unchanged.
    """

    # SELU's fixed point: dropped units are set to its negative saturation value −λα.
    SELU_SATURATION = 1.7580993408473766

    def __init__(self, p: float, *, alpha: bool = False) -> None:
        super().__init__()
        if not (0 <= p < 1 and float(p * 256).is_integer()):
            raise ValueError(f"ByteDropout needs p in [0, 1) as a multiple of 1/256, got {p}")
        self.p = p
        self.alpha = alpha
        self.threshold = int(p * 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = _keep_mask(x, self.threshold)
        if not self.alpha:
            # A multiply by a {0, 1/(1-p)} mask: about 3x cheaper than torch.where, forward and backward.
            return x * keep.mul_(1.0 / (1.0 - self.p))
        # Alpha dropout keeps mean and variance: a·(x·m + (−λα)(1 − m)) + b, as torch.alpha_dropout.
        s = self.SELU_SATURATION
        a = 1.0 / math.sqrt((s * s * self.p + 1) * (1 - self.p))
        offset = (keep - 1).mul_(s * a).add_(s * a * self.p)
        return x * keep.mul_(a) + offset

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}"


def dropout_layer(p: float, *, alpha: bool) -> nn.Module:
    if float(p * 256).is_integer():
        return ByteDropout(p, alpha=alpha)
    return nn.AlphaDropout(p) if alpha else nn.Dropout(p)


class SeedCNN(nn.Module):
    ACT_LAYERS = ACT_LAYERS

    def __init__(self, config: ModelConfig, act: Activation | None = None) -> None:
        super().__init__()
        self.config = config
        act = act or activations.get(config.activation)
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)
        self.act1 = act.module(config.param)
        self.pool1 = nn.MaxPool2d(2)
        self.drop1 = dropout_layer(config.dropout, alpha=config.alpha_dropout)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.act2 = act.module(config.param)
        self.pool2 = nn.MaxPool2d(2)
        self.drop2 = dropout_layer(config.dropout, alpha=config.alpha_dropout)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 5 * 5, 256)
        self.act3 = act.module(config.param)
        self.fc2 = nn.Linear(256, 10)
        initialize(self, config.init)

    # Set by the trainer for a monotonic activation: MaxPool(f(x)) == f(MaxPool(x)), so running f after
    # the pool computes the same function on 4x fewer elements. Export always uses the canonical order.
    pool_first: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_first:
            x = self.drop1(self.act1(self.pool1(self.conv1(x))))
            x = self.drop2(self.act2(self.pool2(self.conv2(x))))
        else:
            x = self.drop1(self.pool1(self.act1(self.conv1(x))))
            x = self.drop2(self.pool2(self.act2(self.conv2(x))))
        return self.fc2(self.act3(self.fc1(self.flatten(x))))

    def weight_layers(self) -> dict[str, nn.Module]:
        return {"conv1": self.conv1, "conv2": self.conv2, "fc1": self.fc1, "fc2": self.fc2}


class DeepCNN(nn.Module):
    """Six 3×3 convolutions in three blocks of two, no batch norm: see the module docstring."""

    ACT_LAYERS = tuple(f"act{i}" for i in range(1, 8))
    WIDTHS = (16, 32, 64)

    def __init__(self, config: ModelConfig, act: Activation | None = None) -> None:
        super().__init__()
        self.config = config
        act = act or activations.get(config.activation)
        channels = 1
        for block, width in enumerate(self.WIDTHS):
            first, second = 2 * block + 1, 2 * block + 2
            setattr(self, f"conv{first}", nn.Conv2d(channels, width, kernel_size=3, padding=1))
            setattr(self, f"act{first}", act.module(config.param))
            setattr(self, f"conv{second}", nn.Conv2d(width, width, kernel_size=3, padding=1))
            setattr(self, f"act{second}", act.module(config.param))
            setattr(self, f"pool{block + 1}", nn.MaxPool2d(2))
            setattr(self, f"drop{block + 1}", dropout_layer(config.dropout, alpha=config.alpha_dropout))
            channels = width
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(channels * 3 * 3, 256)
        self.act7 = act.module(config.param)
        self.fc2 = nn.Linear(256, 10)
        initialize(self, config.init)

    pool_first: bool = False  # as SeedCNN: the second activation of each block runs after its pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in range(len(self.WIDTHS)):
            first, second = 2 * block + 1, 2 * block + 2
            x = getattr(self, f"act{first}")(getattr(self, f"conv{first}")(x))
            x = getattr(self, f"conv{second}")(x)
            act, pool = getattr(self, f"act{second}"), getattr(self, f"pool{block + 1}")
            x = act(pool(x)) if self.pool_first else pool(act(x))
            x = getattr(self, f"drop{block + 1}")(x)
        return self.fc2(self.act7(self.fc1(self.flatten(x))))

    def weight_layers(self) -> dict[str, nn.Module]:
        convs = {f"conv{i}": getattr(self, f"conv{i}") for i in range(1, 7)}
        return {**convs, "fc1": self.fc1, "fc2": self.fc2}


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
