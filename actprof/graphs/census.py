"""How many nodes of each op a graph has, and which of them are the activation's."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from actprof.graphs.surgery import STRUCTURAL_OPS

if TYPE_CHECKING:
    import onnx

ACTIVATION_SITES = 3  # the seed CNN's; a network's own count is len(model.ACT_LAYERS)


def census(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(node.op_type for node in model.graph.node).items()))


def activation_census(counts: dict[str, int]) -> dict[str, int]:
    return {op: n for op, n in counts.items() if op not in STRUCTURAL_OPS}


def is_decomposed(
    act_counts: dict[str, int], expected: tuple[str, ...] | list[str], sites: int = ACTIVATION_SITES
) -> bool:
    return act_counts != {op: sites for op in expected}
