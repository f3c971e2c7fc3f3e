"""How trained models become ONNX files, and where they go."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from actprof.settings.parse import one_of, require

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = 20  # the first opset with a single Gelu op
OPSETS = range(13, 24)
REWRITES = ("none", "pool-first")


@dataclass(frozen=True)
class ExportOptions:
    out: Path = Path("models")
    opset: int = DEFAULT_OPSET
    exporter: str = "dynamo"
    rewrite: str = "none"  # "pool-first": also write <act>+pool-first.onnx where it is exact

    def __post_init__(self) -> None:
        one_of(self.exporter, EXPORTERS, "--exporter")
        require(self.opset in OPSETS, f"--opset must be between {OPSETS[0]} and {OPSETS[-1]}, got {self.opset}")
        one_of(self.rewrite, REWRITES, "--rewrite")
