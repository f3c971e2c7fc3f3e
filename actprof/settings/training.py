"""What a training run is, as every run record embeds it: the network (``ModelConfig``) and the run
(``TrainConfig``); and the names of the networks and inits."""

from __future__ import annotations

import math
from dataclasses import dataclass

from actprof.settings.parse import one_of, require

PRECISIONS = ("auto", "fp32", "bf16")  # training precision
DEVICES = ("cpu", "cuda")  # where PyTorch trains
INITS = ("he", "lecun", "glorot", "default")
# The networks trained: the seed CNN of the Keras ELU experiment, and a plain deep CNN without batch norm.
ARCHITECTURES = ("seed", "deep")
DESCRIPTIONS = {
    "seed": "seed CNN (2 conv + 2 dense, 3 activation sites)",
    "deep": "deep CNN (6 conv + 2 dense, no batch norm, 7 activation sites)",
}
# The stacks a training step is timed on: the network as a user writes it (eager), through torch.compile, and
# actprof's fast trainer; a run times eager (what a PyTorch user gets) and actprof (compile: when asked).
TRAIN_STACKS = ("eager", "compile", "actprof")
DEFAULT_STACKS = ("eager", "actprof")
DROPOUT = 0.25  # the seed recipe's dropout rate
# Alpha dropout's rate for the SELU family: the SELU paper suggests 0.05–0.1; at the seed's 0.25 SELU
# reached 46–50% test accuracy after one epoch on the bundled sample against 90–92% without dropout.
ALPHA_DROPOUT = 0.05


def check_rate(rate: float | None, option: str) -> None:
    require(rate is None or (math.isfinite(rate) and 0.0 <= rate < 1.0), f"{option} must be in [0, 1), got {rate}")


@dataclass(frozen=True)
class ModelConfig:
    """One network to build: the activation at every site, its parameter, the init and the dropout."""

    activation: str
    param: float | None  # the activation's parameter (alpha, slope, beta…); None when it has none
    init: str  # he | lecun | glorot | default
    dropout: float = DROPOUT  # the rate of every dropout layer (alpha dropout's rate when alpha_dropout)
    alpha_dropout: bool = False
    architecture: str = "seed"  # seed | deep

    def __post_init__(self) -> None:
        check_rate(self.dropout, "--alpha-dropout" if self.alpha_dropout else "--dropout")
        one_of(self.architecture, ARCHITECTURES, "--model")
        one_of(self.init, INITS, "--init")
        require(self.param is None or math.isfinite(self.param), f"--alpha must be finite, got {self.param}")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: how long, how fast, with which seed, on what."""

    epochs: int = 1
    batch_size: int = 250
    lr: float = 1e-3
    seed: int = 0
    val_fraction: float = 0.1
    val_every: int = 0  # steps between validation points; 0: dense where curves are steep (loop.validation_steps)
    val_size: int = 2000  # images of the validation split evaluated at each point
    # auto: bf16 autocast where the CPU or GPU has native bf16 (about 2x faster here, same accuracy), else
    # fp32. The validation curve and the test accuracy are measured at this precision; the weights, the
    # export, its ONNX test accuracy and all profiling stay fp32 either way.
    precision: str = "auto"
    threads: int = 0  # 0: all cores
    device: str = "cpu"  # where PyTorch trains; the exported model and its parity check are always fp32 CPU

    def __post_init__(self) -> None:
        for name, value in {"epochs": self.epochs, "batch_size": self.batch_size}.items():
            require(value >= 1, f"--{name.replace('_', '-')} must be at least 1, got {value}")
        require(self.val_every >= 0, f"--val-every must be 0 (automatic) or more, got {self.val_every}")
        require(math.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}")
        require(self.seed >= 0, f"--seed must be non-negative, got {self.seed}")
        require(0.0 < self.val_fraction < 1.0, f"the validation fraction must be in (0, 1), got {self.val_fraction}")
        require(self.val_size >= 1, f"the validation probe must hold at least 1 image, got {self.val_size}")
        one_of(self.precision, PRECISIONS, "--precision")
        require(self.threads >= 0, f"--threads must be 0 (all cores) or more, got {self.threads}")
        one_of(self.device, DEVICES, "--device")


def describe(architecture: str) -> str:
    """The network in words, as every report names it."""
    return DESCRIPTIONS.get(architecture, architecture)


def recipe_words(config: ModelConfig) -> str:
    """The regularisation a run trained with, in words: "dropout 0.25", "alpha dropout 0.05", "no dropout"."""
    if config.dropout == 0:
        return "no dropout"
    return f"{'alpha dropout' if config.alpha_dropout else 'dropout'} {config.dropout:g}"
