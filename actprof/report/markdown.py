"""Markdown: the report as a CI job summary shows it (``$GITHUB_STEP_SUMMARY``). Text from files is data."""

from __future__ import annotations

import html
import re
from pathlib import Path
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
from actprof.report.step_tables import step_note, step_rows
from actprof.report.swap_tables import distance_rows, swap_rows, swap_site_rows
from actprof.report.training_tables import (
    convergence_rows,
    evidence_note,
    evidence_rows,
    lr_note,
    lr_rows,
    seed_rows,
    shared_lr_rows,
)

if TYPE_CHECKING:
    from actprof.schema.profiling import MicrobenchRecord, ProfileRecord
    from actprof.schema.reports import ReportRecord
    from actprof.schema.swap import SwapRecord


def _md_escape(text: str) -> str:
    """Text from files is data: no HTML, no Markdown emphasis or links, no table breaks."""
    text = html.escape(str(text), quote=False)  # <, >, & only: quotes are harmless outside attributes
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", text).replace("\n", " ")


def _md_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "_none_\n"
    header = list(rows[0])
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_escape(row[h]) for h in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown(report: ReportRecord, profile: ProfileRecord | None, microbench: MicrobenchRecord | None = None) -> str:
    target = f"{100 * report.target_accuracy:.0f}%" if report.target_accuracy else "none reached"
    env = report.environment
    parts = [
        "# actprof: does a faster-converging activation pay for its test-time cost?\n",
        f"Network: **{_md_escape(report.network_words)}**. "
        f"Baseline **{_md_escape(report.baseline)}**, target validation accuracy {target}; "
        f"{_md_escape(env.cpu_model)}, {env.cpu_count} cores; "
        + ", ".join(f"{_md_escape(k)} {_md_escape(v)}" for k, v in env.versions.items())
        + "\n",
        "## The answer\n",
        _md_table(decision_rows(report)),
        "\n" + _md_escape(decision_caption(report)) + "\n",
        "\n## The verdicts in words\n",
        *(
            f"- {_md_escape(v.summary)}{' _(within noise)_' if v.latency_within_noise else ''}\n"
            for v in report.verdicts
        ),
        "\n## Convergence\n",
        _md_table(convergence_rows(report)),
    ]
    if report.lr_study:
        parts += [
            "\n## Learning rates\n",
            _md_table(lr_rows(report)),
            "\n" + _md_escape(lr_note(report)) + "\n",
            "\n## At one shared learning rate\n",
            _md_table(shared_lr_rows(report)),
            "\n" + _md_escape(shared_lr_note(report)) + "\n",
        ]
    steps = step_rows(report)
    if steps:
        parts += [
            "\n## The training step on each stack\n",
            _md_table(steps),
            "\n" + _md_escape(step_note(report)) + "\n",
        ]
    seeds, evidence, note = seed_rows(report), evidence_rows(report), evidence_note(report)
    if seeds:
        parts += ["\n## Over seeds: mean ± 95% CI\n", _md_table(seeds)]
    if evidence:
        parts += ["\n## Paired by seed, against the baseline\n", _md_table(evidence)]
    if note:
        parts += ["\n" + _md_escape(note) + "\n"]
    if profile and profile.deployments:
        for batch in profile.settings.batch_sizes:
            parts += [f"\n## Deployment matrix, batch {batch}\n", _md_table(deployment_rows(profile, batch))]
        parts += ["\n" + _md_escape(deployment_note(profile)) + "\n", _md_table(deployment_cell_rows(profile))]
    rewrites = rewrite_rows(profile) if profile else []
    if rewrites:
        parts += ["\n## The exact pool-first rewrite: p50 over the original's\n", _md_table(rewrites)]
    if profile:
        parts += ["\n## Inference latency\n", _md_table(latency_rows(profile))]
        if profile.ablation:
            parts += ["\n## Ablation (same weights, activation swapped)\n", _md_table(ablation_rows(profile))]
            parts += [f"\n{ABLATION_TWINS}\n"]
        parts += ["\n## Per-op time\n", _md_table(op_rows(profile))]
        if op_notes(profile):
            parts += ["\n" + _md_escape(op_notes(profile)) + "\n"]
        parts += ["\n## What each runtime fused\n", _md_table(fusion_rows(profile))]
    if microbench:
        parts += [
            "\n## Activation ops alone: bandwidth as a fraction of copy\n",
            _md_table(microbench_rows(microbench)),
        ]
    return "\n".join(parts)


def swap_markdown(record: SwapRecord) -> str:
    parts = [
        f"# actprof swap: the activation tax of {_md_escape(Path(record.model).name)}\n",
        f"**{_md_escape(record.note.capitalize())}.**\n",
        "## The activation tax\n",
        _md_table(swap_rows(record)),
        "\n" + _md_escape(swap_caption(record)) + "\n",
        "\n## How far each variant's outputs move\n",
        _md_table(distance_rows(record)),
        "\nThe first output, on ONNX Runtime's CPU provider at fp32, over draws of the same inputs. Top class kept: "
        "where the output is class scores (batch × classes).\n",
        "\n## Activation sites\n",
        _md_table(swap_site_rows(record)),
        "\nReplaced: the sites whose role `--roles` names (hidden activations by default), or those `--sites` "
        "lists. A *gate* scales another tensor (squeeze-excitation); a *head* squashes what the network outputs.\n",
        "\n## What each runtime fused\n",
        _md_table(fusion_rows(record)),
    ]
    if record.calibration:
        parts.append(f"\nint8 calibration: {_md_escape(record.calibration)}\n")
    return "\n".join(parts)
