"""What the terminal shows while a command runs: rich progress bars and status lines, and one-line warnings."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from actprof.errors import ActprofWarning
from actprof.pipeline.progress import Reporter, StepCallback

if TYPE_CHECKING:
    from rich.console import Console

    from actprof.schema.training import ModelRecord


@cache
def console() -> Console:
    from rich.console import Console

    # Off a terminal (CI logs, pipes) rich would assume 80 columns and squeeze the tables unreadable.
    return Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def say(message: str) -> None:
    console().print(message, markup=False, highlight=False)


class RichReporter(Reporter):
    """A bar per activation while it trains, a status line while a stage works, the training table after."""

    def say(self, message: str) -> None:
        say(message)

    @contextlib.contextmanager
    def training(self, activations: Sequence[str]) -> Iterator[Callable[[str], StepCallback | None]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console(), transient=False) as bar:
            tasks = {name: bar.add_task(name, total=None) for name in activations}
            yield lambda name: lambda step, total: bar.update(tasks[name], completed=step, total=total)

    @contextlib.contextmanager
    def working(self, title: str) -> Iterator[Callable[[str], None]]:
        with console().status(title) as status:
            yield status.update

    def trained(self, records: Sequence[ModelRecord]) -> None:
        from actprof.report.terminal import print_training

        print_training(records, console=console())

    def wrote(self, paths: Sequence[Path]) -> None:
        console().print("wrote " + ", ".join(str(p) for p in paths))


def show_warnings_in_one_line() -> None:
    """actprof's own warnings (``ActprofWarning``) as one ``actprof: warning: ...`` line on stderr; others as
    Python shows them."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ActprofWarning):
            print(f"actprof: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
