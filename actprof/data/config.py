"""Where MNIST comes from: a directory, or the search order (environment, cache, download, bundled sample)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from actprof.settings.parse import one_of

DATASETS = ("auto", "full", "sample")


@dataclass(frozen=True)
class DataSource:
    """``data_dir``: the four IDX files (None: ``ACTPROF_DATA_DIR``, the cache, a verified download, the sample).
    ``dataset``: ``full`` refuses to fall back to the sample; ``sample`` uses it directly."""

    data_dir: Path | None = None
    dataset: str = "auto"

    def __post_init__(self) -> None:
        one_of(self.dataset, DATASETS, "--dataset")
