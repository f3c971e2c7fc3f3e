"""``actprof profile --runtime-versions``: the tables (terminal and Markdown) and the files.

Read it as an upgrade review: which builds ran (and with what), then per batch the activation's kernel alone
and the whole network, each build's latency, and each later build's change against the first with its
interval and a call; with three builds or more, each build against the one before it too ("build to build",
which release a change came in); then what each build's optimizer fused, and the activation's share of each
build's time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from actprof.analysis.gate import judge
from actprof.report.format import interval, num
from actprof.report.markdown import _md_escape, _md_table
from actprof.report.terminal import _rich_table
from actprof.schema.storage import write_json, write_text_atomic

if TYPE_CHECKING:
    from rich.console import Console

    from actprof.schema.profiling import FusionCensus, Interval
    from actprof.schema.versions import VersionsRecord

THRESHOLD = 0.05  # actprof diff's default threshold


def change_call(change: Interval, threshold: float = THRESHOLD) -> str:
    """What an interval of a latency ratio (new / old) says against ``threshold``, in ``actprof diff``'s words
    and by its rule (``gate.judge``): a regression only when the whole interval is beyond it."""
    if not (change.low > 0 and change.high > 0):  # also NaN: no interval
        return "inconclusive"
    return judge(math.log(change.low), math.log(change.high), math.log1p(threshold))


def build_rows(record: VersionsRecord) -> list[dict[str, str]]:
    return [
        {
            "build": b.label,
            "release": b.version,
            "environment": "beside actprof" if b.installed else "actprof's own",
            "python": b.python,
            "numpy": b.numpy,
            "onnx": b.onnx,
            "threads": b.threads,
        }
        for b in record.runtimes
    ]


def latency_rows(record: VersionsRecord, kind: str, batch: int) -> list[dict[str, str]]:
    """One row per model and build: its median latency, its change against the first build with the interval
    and call, and (networks) its ratio to the baseline model under the same build."""
    labels = [b.label for b in record.runtimes]
    latency = {(r.model, r.runtime): r for r in record.latency if r.kind == kind and r.batch == batch}
    changes = {(c.model, c.runtime): c for c in record.changes if c.kind == kind and c.batch == batch}
    rows = []
    for model in dict.fromkeys(m for m, _ in latency):
        for label in labels:
            row = {
                "activation": model,
                "build": _short(label),
                "elements": f"{latency[(model, label)].elements:,}",
                "p50 ms": num(latency[(model, label)].stats.p50_ms, ",.4f"),
            }
            change = changes.get((model, label))
            row[f"vs {_short(labels[0])}"] = interval(change.latency, ".2f", "×") if change else "(base)"
            row["call"] = change_call(change.latency) if change else ""
            if kind == "network" and record.baseline:
                ratio = latency[(model, label)].vs_baseline
                row[f"× {record.baseline}"] = "1 (baseline)" if model == record.baseline else interval(ratio)
            rows.append(row)
    return rows


def step_rows(record: VersionsRecord, kind: str, batch: int) -> list[dict[str, str]]:
    """Build to build: one row per model and each build against the one before it, with the interval and call,
    and (networks) the change of the model's ratio to the baseline model. None with two builds: the table
    above says the same."""
    if len(record.runtimes) < 3:
        return []
    rows = []
    for change in (c for c in record.adjacent if c.kind == kind and c.batch == batch):
        row = {
            "activation": change.model,
            "from": _short(change.base),
            "to": _short(change.runtime),
            "change": interval(change.latency, ".2f", "×"),
            "call": change_call(change.latency),
        }
        if kind == "network" and record.baseline:
            ratio = "1 (baseline)" if change.model == record.baseline else interval(change.vs_baseline, ".2f", "×")
            row[f"× {record.baseline} change"] = ratio
        rows.append(row)
    return rows


def fusion_rows(record: VersionsRecord) -> list[dict[str, str]]:
    """Per model, what each build's optimizer made of the activation: fused into which op, or left alone."""
    labels = [b.label for b in record.runtimes]
    by_model: dict[str, dict[str, FusionCensus]] = {}
    for label, found in record.fusion.items():
        for census in found:
            by_model.setdefault(census.model, {})[label] = census
    rows = []
    for model, censuses in by_model.items():
        row = {"activation": model}
        for label in labels:
            row[_short(label)] = _fused_words(censuses.get(label))
        described = {row[_short(label)] for label in labels}
        row["changed"] = "yes" if len(described) > 1 else "no"
        rows.append(row)
    return rows


def share_rows(record: VersionsRecord) -> list[dict[str, str]]:
    """The activation's share of each build's per-op time (ORT's own profiler, separate runs)."""
    labels = [b.label for b in record.runtimes]
    profiles = {(p.model, p.batch, label): p for label, found in record.op_profiles.items() for p in found}
    rows = []
    for model, batch in dict.fromkeys((m, b) for m, b, _ in profiles):
        row = {"activation": model, "batch": str(batch)}
        for label in labels:
            p = profiles.get((model, batch, label))
            row[f"{_short(label)} act µs"] = num(p.activation_us_per_run, ",.1f") if p else "—"
            row[f"{_short(label)} share"] = f"{100 * p.activation_share:.1f}%" if p else "—"
        rows.append(row)
    return rows


def _fused_words(census: FusionCensus | None) -> str:
    if census is None:
        return "—"
    parts = [f"{n}× {op}" for op, n in sorted(census.fused.items())]
    parts += [f"{n}× {op} standalone" for op, n in sorted(census.activation_nodes_left.items())]
    return ", ".join(parts) or "no activation node"


def _short(label: str) -> str:
    """``onnxruntime 1.20.1`` → ``1.20.1``; ``onnxruntime (installed)`` → ``installed``."""
    return label.split(" ", 1)[1].replace("(", "").replace(")", "")


def _kind_title(kind: str, batch: int) -> str:
    if kind == "kernel":
        return f"The activation alone (one op over its first site's input), batch {batch}"
    return f"The whole network, batch {batch}"


def _step_title(kind: str, batch: int) -> str:
    what = "the activation alone" if kind == "kernel" else "the whole network"
    return f"Build to build: {what}, batch {batch}"


CAPTION = (
    "p50 from interleaved rounds that alternate between the builds; vs = median of per-round latency ratios to "
    f"the first build, with its 95% interval; call as actprof diff makes it at {100 * THRESHOLD:.0f}%: regression "
    "(or improvement) when the whole interval is beyond the threshold, inconclusive when it straddles the "
    "regression side, else no change"
)

STEP_CAPTION = (
    "each build against the one before it, from the same rounds: the median of per-round latency ratios with its "
    "95% interval and actprof diff's call; a change shows in the release it came in"
)


def _sections(record: VersionsRecord) -> list[tuple[str, list[dict[str, str]], str | None]]:
    sections: list[tuple[str, list[dict[str, str]], str | None]] = [("Builds", build_rows(record), None)]
    for batch in record.settings.batch_sizes:
        for kind in ("kernel", "network"):
            rows = latency_rows(record, kind, batch)
            if rows:
                sections.append((_kind_title(kind, batch), rows, CAPTION))
            if steps := step_rows(record, kind, batch):
                sections.append((_step_title(kind, batch), steps, STEP_CAPTION))
    sections.append(("What each build fused", fusion_rows(record), None))
    sections.append(("The activation's share of per-op time", share_rows(record), None))
    return sections


def versions_markdown(record: VersionsRecord) -> str:
    builds = ", ".join(b.label for b in record.runtimes)
    env = record.environment
    parts = [
        f"# actprof: the same models under {builds}\n",
        f"{_md_escape(env.cpu_model)} ({env.cpu_count} CPUs), "
        f"--threads {record.settings.threads or '0 (the default)'}, "
        f"opt level {record.settings.opt_level}, {record.settings.min_time:g} s of timed runs per target; "
        f"created {record.created}, in {record.seconds:.0f} s. Changes are against {record.runtimes[0].label}"
        f"{_and_adjacent(record)}.\n",
    ]
    for title, rows, caption in _sections(record):
        parts += [f"\n## {title}\n", _md_table(rows)]
        if caption:
            parts.append("\n" + _md_escape(caption) + "\n")
    return "".join(parts)


def print_versions(record: VersionsRecord, *, console: Console) -> None:
    for title, rows, caption in _sections(record):
        console.print(_rich_table(title, rows, caption))


def write_versions(record: VersionsRecord, out: Path) -> list[Path]:
    written = [out / "versions.json", out / "versions.md"]
    write_json(written[0], record)
    write_text_atomic(written[1], versions_markdown(record))
    return written


def _and_adjacent(record: VersionsRecord) -> str:
    return ", and build to build against the one before" if len(record.runtimes) > 2 and record.adjacent else ""
