"""The runtime-versions stage: find the models, time them under every build (``measure.versions``), write the
record and its Markdown."""

from __future__ import annotations

from pathlib import Path

from actprof.errors import UsageError
from actprof.pipeline.progress import QUIET, Reporter
from actprof.schema.storage import find_models
from actprof.schema.versions import VersionsRecord, VersionsSettings
from actprof.settings.profile import ProfileSettings
from actprof.settings.versions import RuntimePin


def versions_settings(settings: ProfileSettings, pins: list[RuntimePin]) -> VersionsSettings:
    """What a runtime-versions profile takes of ``actprof profile``'s settings; what it cannot honour is
    refused (it times fp32 models at one optimization level on the runtime the pins name)."""
    provider = pins[0].provider
    if settings.providers != [provider] and settings.providers != list(ProfileSettings().providers):
        raise UsageError(f"--runtime-versions of {pins[0].package} profile --provider {provider}; leave --provider out")
    if settings.precisions != ["fp32"]:
        raise UsageError("--runtime-versions times the fp32 models; leave --precision out")
    if len(settings.opt_levels) != 1:
        raise UsageError("--runtime-versions takes one --opt-level")
    if settings.cuda_graph:
        raise UsageError("--runtime-versions runs on the CPU; leave --cuda-graph out")
    return VersionsSettings(
        provider=provider,
        batch_sizes=list(settings.batch_sizes),
        opt_level=settings.opt_levels[0],
        min_time=settings.min_time,
        min_runs=settings.min_runs,
        threads=settings.threads,
    )


def profile_versions(
    models: Path,
    names: list[str] | None,
    pins: list[RuntimePin],
    settings: VersionsSettings,
    *,
    baseline: str | None,
    out: Path,
    reporter: Reporter = QUIET,
) -> tuple[VersionsRecord, list[Path]]:
    from actprof.measure.cells import model_ref
    from actprof.measure.versions import profile_versions as measure
    from actprof.report.versions import write_versions

    found = [(model_ref(path, record), path.read_bytes()) for path, record in find_models(models, names)]
    with reporter.working("profiling runtime versions") as status:
        record = measure(found, pins, settings, baseline=baseline, say=status)
    return record, write_versions(record, out)
