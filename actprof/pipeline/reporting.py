"""The report stage: the verdict built from the model records (and ``profile.json``, ``microbench.json`` where
present), every requested format written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from actprof.analysis import verdict
from actprof.pipeline.progress import QUIET, Reporter
from actprof.pipeline.steps import STEPS_FILE
from actprof.report.files import write_reports
from actprof.schema.profiling import MicrobenchRecord, ProfileRecord
from actprof.schema.reports import ReportRecord
from actprof.schema.steps import StepCostRecord
from actprof.schema.storage import find_models, read_json
from actprof.schema.training import ModelRecord


@dataclass(frozen=True)
class Report:
    """The verdict and everything it was built from (what the terminal renders), and the files written."""

    record: ReportRecord
    models: list[ModelRecord]
    profile: ProfileRecord | None
    microbench: MicrobenchRecord | None
    written: list[Path]


def report(
    models: Path,
    results: Path,
    *,
    baseline: str = "relu",
    target: float | None = None,
    formats: Sequence[str] = ("md", "html", "json", "csv"),
    out: Path | None = None,
    highlight: Sequence[str] | None = None,
    train_stack: str | None = None,
    reporter: Reporter = QUIET,
) -> Report:
    """The verdict per activation and deployment; writes ``report.{md,html,json,csv}`` (those in ``formats``)
    to ``out`` (default: ``results``). ``target``: the validation accuracy every activation is judged on
    (a fraction; None: the highest whole percent the baseline reached in every seed). ``train_stack``: the
    stack the training seconds are priced on (None: eager where ``steps.json`` has it, else the runs' clock)."""
    model_records = [record for _, record in find_models(models)]
    profile_path = Path(results) / "profile.json"
    profile = read_json(profile_path, ProfileRecord) if profile_path.exists() else None
    if profile is None:
        reporter.say(f"no {profile_path}: reporting training only (run actprof profile for latency)")
    microbench_path = Path(results) / "microbench.json"
    microbench = read_json(microbench_path, MicrobenchRecord) if microbench_path.exists() else None
    steps_path = Path(results) / STEPS_FILE
    steps = read_json(steps_path, StepCostRecord) if steps_path.exists() else None
    stack = train_stack if train_stack is not None else _default_stack(steps)
    built = verdict.build(model_records, profile, baseline=baseline, target=target, steps=steps, stack=stack)
    written = write_reports(Path(out or results), formats, built, model_records, profile, microbench, highlight)
    return Report(built, model_records, profile, microbench, written)


def _default_stack(steps: StepCostRecord | None) -> str:
    """eager, what a PyTorch user trains with, where it was timed; else the runs' own clock ("")."""
    return "eager" if steps is not None and any(c.stack == "eager" for c in steps.costs) else ""
