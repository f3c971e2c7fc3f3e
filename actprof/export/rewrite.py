"""The exact pool-first rewrite of an exported model: a monotonic activation moved after its MaxPool, checked
by the ONNX checker and on real images against the unrewritten model (max |Δ| ≤ 1e-6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from actprof.errors import ParityError, UsageError
from actprof.export.config import REWRITES
from actprof.export.verify import PARITY_IMAGES, check_parity
from actprof.graphs import surgery
from actprof.graphs.census import activation_census, census
from actprof.runtimes.onnxruntime import cpu_session
from actprof.runtimes.reference import run_batches
from actprof.schema.storage import sha256
from actprof.schema.training import ModelRecord, Parity

if TYPE_CHECKING:
    from actprof.activations import Activation

REWRITE_TOLERANCE = 1e-6


def check_rewrite(rewrite: str, acts: Sequence[Activation] = ()) -> list[str]:
    """A known rewrite; returns the activations pool-first skips (not monotonic non-decreasing), and refuses
    when it would skip every one of ``acts`` (a rewrite that applies to nothing is a mistake)."""
    if rewrite not in REWRITES:
        raise UsageError(f"unknown --rewrite {rewrite!r}; choose from: {', '.join(REWRITES)}")
    skipped = [a.name for a in acts if not a.monotonic] if rewrite == "pool-first" else []
    bad = ", ".join(skipped)
    if acts and len(skipped) == len(acts):
        raise UsageError(
            f"--rewrite pool-first refused for {bad}: not monotonic non-decreasing, so MaxPool(f(x)) != "
            "f(MaxPool(x)); pick monotonic activations (relu, leaky_relu, elu, selu, celu, sigmoid, tanh, softplus)"
        )
    return skipped


def rewrite_pool_first(onnx_bytes: bytes, images: np.ndarray) -> tuple[bytes, Parity, int]:
    """The pool-first rewrite, verified on real images against the unrewritten model (max |Δ| ≤ 1e-6)."""
    import onnx

    try:
        rewritten, moved = surgery.pool_first(onnx.load_from_string(onnx_bytes))
    except surgery.NotMonotonic as exc:
        raise UsageError(f"--rewrite pool-first refused: {exc}; it is exact only for monotonic activations") from None
    try:
        onnx.checker.check_model(rewritten, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ParityError(f"the pool-first rewrite fails the ONNX checker: {str(exc).splitlines()[0]}") from None
    data = rewritten.SerializeToString()
    probe = images[:PARITY_IMAGES]
    reference = run_batches(cpu_session(onnx_bytes), probe)
    parity = check_parity(cpu_session(data), reference, probe, tolerance=REWRITE_TOLERANCE)
    return data, parity, moved


def rewritten_record(record: ModelRecord, data: bytes, parity: Parity, rewrite: str) -> ModelRecord:
    import onnx

    proto = onnx.load_from_string(data)
    counts = census(proto)
    return replace(
        record,
        rewrite=rewrite,
        export=replace(
            record.export,
            file=f"{record.activation.name}+{rewrite}.onnx",
            sha256=sha256(data),
            size_bytes=len(data),
            census=counts,
            activation_census=activation_census(counts),
            parity=parity,
        ),
    )
