"""What a person sees while a stage runs: status lines, a bar per activation, results as they arrive.

The pipeline and the public API call a ``Reporter``; the quiet one (the default for Python callers) says
nothing, and the command line passes one that draws with rich (``cli.console``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from actprof.schema.training import ModelRecord

StepCallback = Callable[[int, int], None]  # (steps done, steps in all) of one activation's trainings


class Reporter:
    """Silent: every hook does nothing. Subclass to show progress."""

    def say(self, message: str) -> None:
        """A line worth keeping (a data source, a resumed sweep, a skipped provider)."""

    @contextlib.contextmanager
    def training(self, activations: Sequence[str]) -> Iterator[Callable[[str], StepCallback | None]]:
        """While activations train: yields, per activation, where its steps go (None: nowhere)."""
        yield lambda _activation: None

    @contextlib.contextmanager
    def working(self, title: str) -> Iterator[Callable[[str], None]]:
        """While a long stage runs: yields where its passing status goes."""
        yield lambda _message: None

    def trained(self, records: Sequence[ModelRecord]) -> None:
        """The models a training stage saved."""

    def wrote(self, paths: Sequence[Path]) -> None:
        """Files just written."""


QUIET = Reporter()
