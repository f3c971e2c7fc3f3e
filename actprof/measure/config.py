"""What a user chose for the measuring stages the records do not embed: the microbenchmark, and ``swap``'s
candidates, sites and inputs (``ProfileSettings``, which records embed, is in ``settings.profile``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from actprof.activations import SITE_ROLES as ROLES
from actprof.activations import candidates
from actprof.settings.parse import one_of, require
from actprof.settings.profile import PROVIDERS, ProfileSettings, check_timing


@dataclass(frozen=True)
class MicrobenchSettings:
    """Each activation as one op over tensors of ``sizes`` elements (None: one in L2, one twice the L3)."""

    providers: list[str] = field(default_factory=lambda: ["cpu"])
    sizes: list[int] | None = None
    threads: int = 0
    min_time: float = 0.2
    min_runs: int = 5

    def __post_init__(self) -> None:
        for provider in self.providers:
            one_of(provider, PROVIDERS, "--provider")
        require(self.sizes is None or all(1 <= s <= 1 << 31 for s in self.sizes), f"bad --sizes {self.sizes}")
        check_timing(min_time=self.min_time, min_runs=self.min_runs, threads=self.threads)


@dataclass(frozen=True)
class SwapOptions:
    """What ``swap`` puts where: the candidates at every site whose role is in ``roles`` (hidden activations by
    default; or the ``sites`` listed, 1-based, whatever their role), and what each input gets: shapes
    (``name=1x3x224x224``, comma-separated), constants (``name=16000``), token-id bounds (``name=30522``), real
    values (an .npz), or random values drawn with ``seed`` (measure.inputs)."""

    candidates: list[str] = field(default_factory=lambda: ["relu", "elu", "gelu", "silu", "identity"])
    sites: str | None = None
    roles: tuple[str, ...] = ("activation",)
    input_shape: str | None = None
    input_value: str | None = None
    vocab_size: str | None = None
    inputs: Path | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        names = list(candidates())
        require(bool(self.candidates), "--to is empty; choose from: " + ", ".join(names))
        for candidate in self.candidates:
            one_of(candidate, names, "--to")
        require(bool(self.roles), "--roles is empty; choose from: " + ", ".join(ROLES))
        for role in self.roles:
            one_of(role, ROLES, "--roles")
        require(self.seed >= 0, f"--seed must be non-negative, got {self.seed}")


# swap's defaults: a whole network at batch 1, 20 runs at least, nothing swapped for the ablation (the swap is it).
SWAP_PROFILE = ProfileSettings(batch_sizes=[1], min_runs=20, ablation=False, input="random normal inputs")
