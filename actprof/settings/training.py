"""What a training run is, as every run record embeds it: the network (``ModelConfig``) and the run
(``TrainConfig``); and the names of the networks and inits."""

from __future__ import annotations

import math
from dataclasses import dataclass

from actprof.settings.networks import NetworkSpec, check_network
from actprof.settings.parse import one_of, require

PRECISIONS = ("auto", "fp32", "bf16")  # training precision
DEVICES = ("cpu", "cuda")  # where PyTorch trains
INITS = ("he", "lecun", "glorot", "default")
OPTIMIZERS = ("adam", "sgd")
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
    architecture: str = "seed"  # the --model spec (settings.networks): seed, deep, mlp:8x128, file.py:function
    batch_norm: bool = False  # mlp: BatchNorm1d after each hidden layer, before its activation
    standardize: bool = False  # mlp: (pixels − mean) / std as the network's first layer
    source_sha256: str = ""  # FILE.py:FUNCTION: the file's sha256 (a changed file is another network)

    def __post_init__(self) -> None:
        check_rate(self.dropout, "--alpha-dropout" if self.alpha_dropout else "--dropout")
        check_network(self.architecture, batch_norm=self.batch_norm, standardize=self.standardize)
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
    optimizer: str = "adam"  # adam | sgd, at ``lr``
    momentum: float = 0.0  # sgd only
    nesterov: bool = False  # sgd with momentum only

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
        one_of(self.optimizer, OPTIMIZERS, "--optimizer")
        ok = math.isfinite(self.momentum) and 0.0 <= self.momentum < 1.0
        require(ok, f"--momentum must be in [0, 1), got {self.momentum}")
        require(self.optimizer == "sgd" or self.momentum == 0, "--momentum applies to --optimizer sgd")
        require(not self.nesterov or self.momentum > 0, "--nesterov needs --optimizer sgd with a --momentum above 0")


def optimizer_words(config: TrainConfig) -> str:
    """The optimizer a run trained with, in words: "Adam", "SGD", "SGD momentum 0.9 (Nesterov)"."""
    if config.optimizer == "adam":
        return "Adam"
    momentum = f" momentum {config.momentum:g}" if config.momentum else ""
    return f"SGD{momentum}" + (" (Nesterov)" if config.nesterov else "")


def recipe_words(config: ModelConfig) -> str:
    """The regularisation a run trained with, in words: "dropout 0.25", "alpha dropout 0.05", "no dropout"."""
    if NetworkSpec.parse(config.architecture).kind == "file":
        return "the network's own dropout"
    if config.dropout == 0:
        return "no dropout"
    return f"{'alpha dropout' if config.alpha_dropout else 'dropout'} {config.dropout:g}"
