"""What a user chose for a training stage beyond one run: the recipe every activation is trained with, and the
sweep over learning rates and seeds. Each checks itself when built."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from actprof.errors import UsageError
from actprof.settings.networks import check_network
from actprof.settings.parse import one_of, require
from actprof.settings.training import INITS, TrainConfig, check_rate

MAX_SEEDS = 100


@dataclass(frozen=True)
class Recipe:
    """The network, its init and its regularisation as the user chose them, for every activation trained
    (None: the activation family's default: its parameter, its init, dropout 0.25 or alpha dropout 0.05)."""

    architecture: str = "seed"  # the --model spec (settings.networks)
    batch_norm: bool = False  # mlp networks: BatchNorm1d after each hidden layer
    standardize: bool = False  # mlp networks: standardized pixels as the first layer
    dropout: float | None = None
    alpha_dropout: float | None = None
    param: float | None = None  # --alpha: ELU/CELU alpha, LeakyReLU slope, Softplus beta, PReLU's initial slope
    init: str | None = None

    def __post_init__(self) -> None:
        check_network(self.architecture, batch_norm=self.batch_norm, standardize=self.standardize)
        check_rate(self.dropout, "--dropout")
        check_rate(self.alpha_dropout, "--alpha-dropout")
        require(self.param is None or math.isfinite(self.param), f"--alpha must be finite, got {self.param}")
        if self.init is not None:
            one_of(self.init, INITS, "--init")


@dataclass(frozen=True)
class Sweep:
    """What a training sweep covers beyond the activations: learning rates and seeds, and whether runs
    already saved are trained again."""

    lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    force: bool = False

    def __post_init__(self) -> None:
        require(bool(self.lrs), "--lr is empty; give at least one learning rate")
        for lr in self.lrs:
            require(math.isfinite(lr) and lr > 0, f"--lr must be a comma list of finite positive numbers, got {lr}")
        require(len(set(self.lrs)) == len(self.lrs), f"--lr lists a rate twice: {list(self.lrs)}")
        require(bool(self.seeds) and all(s >= 0 for s in self.seeds), f"--seed must be non-negative, got {self.seeds}")
        require(len(self.seeds) <= MAX_SEEDS, f"--seeds must be between 1 and {MAX_SEEDS}, got {len(self.seeds)}")
        require(len(set(self.seeds)) == len(self.seeds), f"--seed lists a seed twice: {list(self.seeds)}")

    @classmethod
    def of(
        cls, train: TrainConfig, lrs: Sequence[float] = (), extra_seeds: Sequence[int] = (), *, force=False
    ) -> Sweep:
        """The config's rate and seed, or the rates given, and the extra seeds after the config's."""
        return cls(lrs=tuple(lrs) or (train.lr,), seeds=(train.seed, *extra_seeds), force=force)

    @property
    def trainings_per_activation(self) -> int:
        return len(self.lrs) * len(self.seeds)


def parse_seeds(spec: str, count: int | None = None) -> list[int]:
    """``--seed 0,1,2`` or ``--seed S --seeds N`` → the seeds to train with, the first one exported."""
    try:
        given = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seed must be an integer or a comma list of integers, got {spec!r}") from None
    require(bool(given) and all(s >= 0 for s in given), f"--seed must be non-negative integers, got {spec!r}")
    if count is not None:
        require(len(given) == 1, "give either --seed as a list or --seeds N, not both")
        require(1 <= count <= MAX_SEEDS, f"--seeds must be between 1 and {MAX_SEEDS}, got {count}")
        given = list(range(given[0], given[0] + count))
    require(len(set(given)) == len(given), f"--seed lists a seed twice: {spec!r}")
    return given
