"""The terminal: rich tables, ending with the decision table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from actprof.report.captions import ABLATION_TWINS, decision_caption, shared_lr_note, swap_caption
from actprof.report.decision_tables import decision_rows
from actprof.report.profile_tables import (
    ablation_rows,
    deployment_cell_rows,
    deployment_note,
    deployment_rows,
    fusion_rows,
    latency_rows,
    microbench_rows,
    op_notes,
    op_rows,
    rewrite_rows,
)
from actprof.report.step_tables import cost_rows, step_note, step_rows
from actprof.report.swap_tables import distance_rows, site_list_rows, swap_rows, swap_site_rows
from actprof.report.training_tables import (
    convergence_rows,
    evidence_note,
    evidence_rows,
    lr_note,
    lr_rows,
    seed_rows,
    shared_lr_rows,
    training_rows,
)

if TYPE_CHECKING:
    from rich.console import Console

    from actprof.analysis.gate import Change, Diff
    from actprof.schema.environment import Environment, GpuInfo
    from actprof.schema.profiling import MicrobenchRecord, ProfileRecord, ProviderStatus
    from actprof.schema.reports import ReportRecord
    from actprof.schema.steps import StepCostRecord
    from actprof.schema.swap import SiteRecord, SwapRecord
    from actprof.schema.training import ModelRecord


def _rich_table(title: str, rows: list[dict[str, str]], caption: str | None = None):
    from rich.table import Table

    table = Table(title=title, caption=caption, header_style="bold")
    for i, column in enumerate(rows[0] if rows else []):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in rows:
        table.add_row(*row.values())
    return table


def print_training(records: Sequence[ModelRecord], *, console: Console) -> None:
    if not records:
        return
    d = records[0].dataset
    caption = (
        f"MNIST {d.kind} ({d.n_train:,} train / {d.n_test:,} test, from {d.source}); "
        f"{records[0].train.config.epochs} epoch(s), batch {records[0].train.config.batch_size}; "
        "times are training seconds, validation excluded"
    )
    console.print(_rich_table("Training and export", training_rows(records), caption))


def print_environment(
    env: Environment,
    *,
    console: Console,
    providers: Sequence[ProviderStatus] = (),
    gpu: GpuInfo | None = None,
) -> None:
    rows = [
        {"": "actprof", "value": env.actprof},
        {"": "python", "value": env.python},
        {"": "platform", "value": env.platform},
        {"": "CPU", "value": f"{env.cpu_model} ({env.cpu_count} logical cores)"},
        *({"": name, "value": version} for name, version in env.versions.items()),
    ]
    rows.append({"": "GPU", "value": f"{gpu.name}, driver {gpu.driver}, {gpu.memory_mib:,} MiB" if gpu else "none"})
    for status in providers:
        state = "binds" if status.binds else ("compiled in, does not bind" if status.compiled else "not compiled in")
        rows.append({"": status.execution_provider, "value": f"{state} — {status.reason}"})
    console.print(_rich_table("Environment", rows))


def print_deployment(record: ProfileRecord, *, console: Console) -> None:
    """The deployment matrix per batch, then what each cell is (accuracy, file, memory)."""
    if not record.deployments:
        return
    from rich.markup import escape

    for batch in record.settings.batch_sizes:
        console.print(_rich_table(f"Deployment matrix, batch {batch}", deployment_rows(record, batch)))
    console.print(_rich_table("Deployment cells", deployment_cell_rows(record), escape(deployment_note(record))))


def print_profile(record: ProfileRecord, *, console: Console) -> None:
    s, env = record.settings, record.environment
    ort_version = env.versions.get("onnxruntime-gpu") or env.versions.get("onnxruntime")
    caption = (
        f"ORT {ort_version}, {env.cpu_model}, threads {s.threads or 'ORT default'}, "
        f"opt level {','.join(s.opt_levels)}; ratios: median of per-round ratios in interleaved rounds, "
        "95% CI of that median (order statistics)"
    )
    print_deployment(record, console=console)
    rewrites = rewrite_rows(record)
    if rewrites:
        console.print(_rich_table("The exact rewrite: p50 over the original's", rewrites))
    console.print(_rich_table("Inference latency", latency_rows(record), caption))
    if record.ablation:
        console.print(
            _rich_table(
                "Ablation: same weights, activation swapped",
                ablation_rows(record),
                "cost = as trained − identity; over ReLU = as trained − ReLU swapped in (median per-round "
                f"difference). {ABLATION_TWINS}",
            )
        )
    from rich.markup import escape

    notes = op_notes(record)  # node names come from the model file: never rich markup
    console.print(_rich_table("Per-op time (separate profiling session)", op_rows(record), escape(notes) or None))
    console.print(_rich_table("What each runtime fused", fusion_rows(record)))


def print_steps(record: StepCostRecord, *, console: Console) -> None:
    from rich.markup import escape

    console.print(_rich_table("The training step on each stack", cost_rows(record), escape(step_note(record))))


def print_microbench(record: MicrobenchRecord, *, console: Console) -> None:
    caption = (
        "bytes moved = one float32 read + one write per element; copy = ORT Identity (a memcpy) over the same "
        "tensor, same run; in cache, parallel ops can beat it; far below 100% at the DRAM size = compute-bound"
    )
    console.print(_rich_table("Activation ops alone", microbench_rows(record), caption))


# --- the report: terminal, Markdown, HTML, JSON, CSV ---------------------------------------------


def print_report(
    report: ReportRecord,
    profile: ProfileRecord | None,
    *,
    console: Console,
    microbench: MicrobenchRecord | None = None,
) -> None:
    caption = f"{report.network_words}; steps / training seconds to reach, ± half the validation bracket"
    console.print(_rich_table("Convergence", convergence_rows(report), caption))
    if report.lr_study:
        console.print(_rich_table("Learning rates", lr_rows(report), lr_note(report)))
        console.print(_rich_table("At one shared learning rate", shared_lr_rows(report), shared_lr_note(report)))
    steps = step_rows(report)
    if steps:
        console.print(_rich_table("The training step on each stack", steps, step_note(report)))
    seeds, evidence = seed_rows(report), evidence_rows(report)
    if seeds:
        console.print(_rich_table("Over seeds: mean ± 95% CI", seeds))
    if evidence:
        console.print(_rich_table("Paired by seed, against the baseline", evidence))
    if profile:
        print_profile(profile, console=console)
    if microbench:
        print_microbench(microbench, console=console)
    console.rule("The verdicts in words")
    for v in report.verdicts:
        style = "dim" if v.latency_within_noise else None
        console.print(v.summary, style=style, markup=False, highlight=False)
    from rich.markup import escape

    note = evidence_note(report)
    if note:
        console.print(note, markup=False, highlight=False)
    console.print(_rich_table("The answer", decision_rows(report), escape(decision_caption(report))))


def print_diff(result: Diff, *, console: Console) -> None:
    """Every change with its 95% interval and its call, regressions and inconclusive ones first; a diff of a
    result set with itself says only that nothing changed."""
    from rich.markup import escape

    if result.identical:
        console.print(f"Nothing changed: the {len(result.changes)} values compared are identical in both.")
        return
    caption = (
        f"threshold {100 * result.threshold:g}% (test accuracy: {100 * result.threshold:g}% of BASE's); "
        f"latency is the ratio to {result.baseline}, change NEW/BASE; accuracy change NEW − BASE in points"
    )
    rows = [{column: escape(text) for column, text in row.items()} for row in diff_rows(result)]
    if not any(row["note"] for row in rows):
        rows = [{column: text for column, text in row.items() if column != "note"} for row in rows]
    console.print(_rich_table("Diff: each change, its 95% interval and the call", rows, caption))
    if result.not_compared:
        shown = "; ".join(result.not_compared[:3]) + (" …" if len(result.not_compared) > 3 else "")
        console.print(escape(f"Not compared ({len(result.not_compared)}): {shown}"), style="dim")


def diff_rows(result: Diff) -> list[dict[str, str]]:
    return [
        {
            "activation": c.activation,
            "quantity": c.quantity,
            "where": c.where or "—",
            "BASE": _diff_value(c, c.base),
            "NEW": _diff_value(c, c.new),
            "change": _diff_change(c, c.change),
            "95% CI": f"[{_diff_change(c, c.low)}, {_diff_change(c, c.high)}]" if math.isfinite(c.low) else "—",
            "call": c.call.upper() if c.call in ("regression", "inconclusive") else c.call,
            "note": c.reason,
        }
        for c in result.changes
    ]


def _diff_value(change: Change, value: float) -> str:
    return f"{value:.3f}×" if change.is_ratio else f"{100 * value:.2f}%"


def _diff_change(change: Change, value: float) -> str:
    """A latency change as a percentage (1.10: +10.0%), an accuracy change in percentage points."""
    if not math.isfinite(value):
        return "—"
    return f"{100 * (value - 1):+.1f}%" if change.is_ratio else f"{100 * value:+.2f} pt"


# --- bring your own model ----------------------------------------------------------------------------


def print_sites(sites: list[SiteRecord], replaced: list[int], *, console: Console) -> None:
    caption = f"{len(replaced)} of {len(sites)} would be replaced; choose others with --roles or --sites"
    console.print(_rich_table("Activation sites", site_list_rows(sites, replaced), caption))


def print_swap(record: SwapRecord, *, console: Console) -> None:
    from rich.markup import escape

    console.print(_rich_table("Activation sites", swap_site_rows(record)))
    console.print(_rich_table("The activation tax", swap_rows(record), escape(swap_caption(record))))
    note = "first output, ONNX Runtime CPU fp32, same inputs; not retrained"
    console.print(_rich_table("How far each variant's outputs move", distance_rows(record), note))
