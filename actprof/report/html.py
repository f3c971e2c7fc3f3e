"""HTML: one self-contained page (jinja2, autoescaped) with the tables and the plots embedded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from actprof.report.captions import decision_caption, shared_lr_note, swap_caption
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
from actprof.report.step_tables import step_note, step_rows, step_seconds
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
    from markupsafe import Markup

    from actprof.schema.profiling import MicrobenchRecord, ProfileRecord
    from actprof.schema.reports import ReportRecord
    from actprof.schema.swap import SwapRecord
    from actprof.schema.training import ModelRecord


def _html_table(rows: list[dict[str, str]]) -> Markup:
    from markupsafe import Markup, escape

    if not rows:
        return Markup("<p>none</p>")
    head = "".join(f"<th>{escape(h)}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row.values()) + "</tr>" for row in rows)
    return Markup(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def default_highlight(report: ReportRecord, count: int = 3) -> list[str]:
    """The curves drawn in colour when --highlight is not given: the decision table's first few."""
    return [r["activation"] for r in decision_rows(report) if "+" not in r["activation"]][:count]


def _seconds_alt(stack: str) -> str:
    if stack:
        return f"Validation accuracy vs training seconds on {stack} (steps × each activation's measured step time)"
    return "Validation accuracy vs training seconds"


def html_page(
    report: ReportRecord,
    models: Sequence[ModelRecord],
    profile: ProfileRecord | None,
    microbench: MicrobenchRecord | None = None,
    highlight: Sequence[str] | None = None,
) -> str:
    import base64

    import jinja2

    from actprof.report import plots

    def fig(png: bytes, alt: str) -> dict[str, str]:
        return {"data": base64.b64encode(png).decode("ascii"), "alt": alt}

    shown = list(highlight) if highlight else default_highlight(report)
    curves = {"baseline": report.baseline, "highlight": shown if len(models) > 5 else None}
    priced = {"step_seconds": step_seconds(report), "stack": report.train_stack}
    figures: dict[str, list[dict[str, str]]] = {
        "answer": [],
        "curves": [
            fig(plots.accuracy_curves(models, x="steps", **curves), "Validation accuracy vs training steps"),
            fig(plots.accuracy_curves(models, x="seconds", **curves, **priced), _seconds_alt(report.train_stack)),
        ],
        "latency": [],
        "ops": [],
        "lr": [],
    }
    if report.lr_study:
        alt = "Final validation accuracy vs learning rate (mean, 95% CI over seeds; ringed: the chosen rate)"
        figures["lr"].append(fig(plots.lr_sensitivity(report), alt))
    keys = ("evidence", "evidence_note", "seeds", "roofline", "latency", "ablation", "ops", "ops_note", "fusion")
    tables = dict.fromkeys((*keys, "cells", "cells_note", "rewrite", "lr", "lr_note", "shared", "shared_note"), "")
    if report.lr_study:
        tables |= {
            "lr": _html_table(lr_rows(report)),
            "lr_note": lr_note(report),
            "shared": _html_table(shared_lr_rows(report)),
            "shared_note": shared_lr_note(report),
        }
    matrices: list[tuple[int, Markup]] = []
    tables["decision"] = _html_table(decision_rows(report))
    tables["decision_caption"] = decision_caption(report)
    tables["convergence"] = _html_table(convergence_rows(report))
    steps = step_rows(report)
    tables["steps"] = _html_table(steps) if steps else ""
    tables["steps_note"] = step_note(report)
    seeds, evidence = seed_rows(report), evidence_rows(report)
    if seeds:
        tables["seeds"] = _html_table(seeds)
    if evidence:
        tables["evidence"] = _html_table(evidence)
    tables["evidence_note"] = evidence_note(report)
    first = next(iter(report.verdicts), None)
    if profile and first is not None:
        where = dict(provider=first.provider, precision=first.precision, batch=min(profile.settings.batch_sizes))
        label = f"{first.provider} {first.precision}, batch {where['batch']}"
        chart = plots.pareto(report, **where)
        figures["answer"].append(fig(chart, f"The trade-off: latency vs training seconds to the target, {label}"))
    if profile:
        if profile.deployments:
            matrices = [(b, _html_table(deployment_rows(profile, b))) for b in profile.settings.batch_sizes]
            tables |= {"cells": _html_table(deployment_cell_rows(profile)), "cells_note": deployment_note(profile)}
        for provider, precision in dict.fromkeys((r.provider, r.precision) for r in profile.latency):
            for batch in sorted(
                {r.batch for r in profile.latency if (r.provider, r.precision) == (provider, precision)}
            ):
                where = dict(provider=provider, batch=batch, precision=precision)
                label = f"{provider} {precision}, batch {batch}"
                figures["latency"].append(fig(plots.latency_bars(profile, **where), f"p50 latency, {label}"))
                figures["latency"].append(
                    fig(plots.pareto(report, **where), f"Latency vs time to target accuracy, {label}")
                )
                figures["ops"].append(fig(plots.op_shares(profile, **where), f"Per-op time, {label}"))
        tables |= {
            "rewrite": _html_table(rewrites) if (rewrites := rewrite_rows(profile)) else "",
            "latency": _html_table(latency_rows(profile)),
            "ablation": _html_table(ablation_rows(profile)) if profile.ablation else "",
            "ops": _html_table(op_rows(profile)),
            "ops_note": op_notes(profile),
            "fusion": _html_table(fusion_rows(profile)),
        }
    if microbench:
        tables["roofline"] = _html_table(microbench_rows(microbench))
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("actprof.report", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    target = f"{100 * report.target_accuracy:.0f}% validation accuracy" if report.target_accuracy else "none reached"
    page = env.get_template("report.html.j2")
    network = report.network_words
    return page.render(report=report, tables=tables, figures=figures, target=target, matrices=matrices, network=network)


def swap_html(record: SwapRecord) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("actprof.report", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    tables = {
        "tax": _html_table(swap_rows(record)),
        "sites": _html_table(swap_site_rows(record)),
        "distance": _html_table(distance_rows(record)),
        "fusion": _html_table(fusion_rows(record)),
    }
    return env.get_template("swap.html.j2").render(record=record, tables=tables, caption=swap_caption(record))
