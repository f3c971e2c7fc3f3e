"""The CI gate: two result sets compared, and the regressions beyond a threshold listed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from actprof.errors import ModelFileError, UsageError
from actprof.schema.reports import ReportRecord
from actprof.schema.storage import read_json


@dataclass(frozen=True)
class Change:
    what: str
    base: float
    new: float
    regressed: bool


def load_report(path: Path) -> ReportRecord:
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    if not file.exists():
        raise ModelFileError(f"no report at {file}; run actprof report --out {path} first")
    record = read_json(file, ReportRecord)
    if record.kind != "report":
        raise ModelFileError(f"{file} is a {record.kind!r} record, not a report")
    return record


def diff(base: ReportRecord, new: ReportRecord, *, threshold: float) -> list[Change]:
    """Latency ratios against the baseline (higher is worse) and test accuracy (lower is worse)."""
    changes = []
    new_by_name = {s.name: s for s in new.activations}
    for old in base.activations:
        now = new_by_name.get(old.name)
        if now is None:
            continue
        changes.append(
            Change(
                f"{old.name} test accuracy",
                old.test_accuracy,
                now.test_accuracy,
                now.test_accuracy < old.test_accuracy * (1 - threshold),
            )
        )
        now_latency = {(r.provider, r.precision, r.batch, r.mode): r for r in now.latency}
        for r in old.latency:
            match = now_latency.get((r.provider, r.precision, r.batch, r.mode))
            if r.vs_baseline is None or match is None or match.vs_baseline is None:
                continue
            a, b = r.vs_baseline.value, match.vs_baseline.value
            changes.append(
                Change(
                    f"{old.name} latency × {base.baseline} ({r.provider} {r.precision}, batch {r.batch}, {r.mode})",
                    a,
                    b,
                    b > a * (1 + threshold),
                )
            )
    return changes


def parse_threshold(spec: str) -> float:
    text = spec.strip().removesuffix("%")
    try:
        value = float(text) / (100 if spec.strip().endswith("%") else 1)
    except ValueError:
        raise UsageError(f"--threshold must be a percentage like 5% or a fraction like 0.05, got {spec!r}") from None
    if not (math.isfinite(value) and 0 <= value < 10):
        raise UsageError(f"--threshold must be between 0% and 1000%, got {spec!r}")
    return value
