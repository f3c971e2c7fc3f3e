"""Two models timed side by side on ONNX Runtime's CPU provider: is the exact rewrite faster?"""

from __future__ import annotations

from actprof import runtimes
from actprof.measure import harness
from actprof.measure.cells import images
from actprof.schema.profiling import Interval


def cpu_ratio(numerator: bytes, denominator: bytes, *, batch: int = 1, min_seconds: float = 0.3) -> Interval:
    """``numerator``'s latency over ``denominator``'s at ``batch`` (median per-round ratio, interleaved): an
    exact rewrite can still be slower (it can break a fusion the runtime had)."""
    cpu = runtimes.backend("cpu")
    x = images(batch)
    targets = {
        name: cpu.compute_target(cpu.load(data, opt_level="all"), x).run
        for name, data in (("numerator", numerator), ("denominator", denominator))
    }
    rounds = harness.interleave(targets, min_seconds=min_seconds, min_runs=30)
    return harness.ratio(rounds, "numerator", "denominator")
