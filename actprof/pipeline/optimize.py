"""``actprof optimize``: the exact pool-first rewrite of a model file, its parity and its speed here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from actprof.schema.profiling import Interval


@dataclass(frozen=True)
class Optimized:
    """The exact pool-first rewrite of a model: where it was written, how many activations moved, its
    parity with the original on real images, and its latency over the original's (ORT CPU, batch 1)."""

    path: Path
    moved: int
    max_abs_diff: float
    images: int
    speed: Interval


def optimize(model: Path, out: Path | None) -> Optimized:
    from actprof.export.rewrite import rewrite_pool_first, rewritten_record
    from actprof.export.verify import PARITY_IMAGES
    from actprof.graphs.files import load_model_file
    from actprof.measure.cells import images
    from actprof.measure.side_by_side import cpu_ratio
    from actprof.schema.storage import load_record, write_bytes_atomic, write_json

    proto = load_model_file(model)
    data, parity, moved = rewrite_pool_first(proto.SerializeToString(), images(PARITY_IMAGES))
    target = out or model.with_name(f"{model.stem}+pool-first.onnx")
    record_path = model.with_suffix(".json")
    record = load_record(record_path) if record_path.is_file() and out is None else None
    write_bytes_atomic(target, data)
    if record is not None:
        write_json(target.with_suffix(".json"), rewritten_record(record, data, parity, "pool-first"))
    speed = cpu_ratio(data, model.read_bytes())
    return Optimized(target, moved, parity.max_abs_diff, parity.images, speed)
