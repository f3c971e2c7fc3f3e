"""Everything a person reads: rich tables in the terminal, Markdown, HTML with plots, JSON and CSV.

This is the only module that formats output; the stages hand it records.
"""

from __future__ import annotations

import html
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from actprof.records import reached
from actprof.settings import describe
from actprof.tables import (
    ablation_rows,
    decision_rows,
    deployment_cell_rows,
    deployment_note,
    deployment_rows,
    fusion_rows,
    latency_rows,
    microbench_rows,
    op_notes,
    op_rows,
    primary_target,
    rewrite_rows,
    swap_rows,
    swap_site_rows,
)
from actprof.training_tables import (
    contention_note,
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
    from markupsafe import Markup
    from rich.console import Console

    from actprof.environment import Environment
    from actprof.records import (
        GpuInfo,
        MicrobenchRecord,
        ModelRecord,
        ProfileRecord,
        ProviderStatus,
        ReportRecord,
        SwapRecord,
    )
    from actprof.verdict import Change


ABLATION_TWINS = (
    "A swapped graph that is, weights aside, one already timed is timed once: every ReLU swap is the ReLU "
    "model's graph, and all identity swaps are one graph."
)


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
    console.print(_rich_table("What ORT fused", fusion_rows(record)))


def print_microbench(record: MicrobenchRecord, *, console: Console) -> None:
    caption = (
        "bytes moved = one float32 read + one write per element; copy = ORT Identity (a memcpy) over the same "
        "tensor, same run; in cache, parallel ops can beat it; far below 100% at the DRAM size = compute-bound"
    )
    console.print(_rich_table("Activation ops alone", microbench_rows(record), caption))


# --- the report: terminal, Markdown, HTML, JSON, CSV ---------------------------------------------

FORMATS = ("table", "md", "html", "json", "csv")


def parse_formats(spec: str) -> list[str]:
    from actprof.settings import parse_choices

    return parse_choices(spec, FORMATS, "--format")


def print_report(
    report: ReportRecord,
    profile: ProfileRecord | None,
    *,
    console: Console,
    microbench: MicrobenchRecord | None = None,
) -> None:
    caption = f"{describe(report.architecture)}; steps / training seconds to reach, ± half the validation bracket"
    console.print(_rich_table("Convergence", convergence_rows(report), caption))
    if report.lr_study:
        console.print(_rich_table("Learning rates", lr_rows(report), lr_note(report)))
        console.print(_rich_table("At one shared learning rate", shared_lr_rows(report), shared_lr_note(report)))
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


def decision_caption(report: ReportRecord) -> str:
    """What the decision table's numbers are: the target and how it was chosen, where the words apply."""
    if report.target_accuracy:
        target = f"Target: {100 * report.target_accuracy:.0f}% validation accuracy ({report.target_rule}). "
    else:
        target = f"No target accuracy ({report.target_rule or 'the baseline reached none'}). "
    network = " ".join(filter(None, [f"Network: {describe(report.architecture)}.", contention_note(report)])) + " "
    if report.lr_study:
        base_lr = next((f"{s.lr:g}" for s in report.activations if s.name == report.baseline and s.lr), "—")
        network += (
            f"Each activation at its own learning rate, chosen on the validation split ({report.baseline}: {base_lr}). "
        )
    return (
        network + target + f"s saved: the baseline's seconds to the target minus the activation's (positive: it trains "
        f"faster). × {report.baseline}: median per-round latency ratio at batch 1 on each deployment [95% CI]. "
        f"The verdict and break-even are for {primary_target(report)} at batch 1: wins (better on one side, worse on "
        "neither), trade-off (the break-even decides), tie, loses."
    )


def shared_lr_note(report: ReportRecord) -> str:
    study = report.lr_study
    return (
        f"What a single-rate study would say: every activation at lr {study.shared_lr:g}, {study.shared_rule}; "
        "the target there is the highest whole percent of validation accuracy "
        f"{report.baseline} reached in every seed at that rate. "
        "Δ: seconds to the target minus the baseline's, paired by seed; a Δ no larger than the resolution (the "
        "median validation bracket) is not evidence."
    )


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
        f"Network: **{_md_escape(describe(report.architecture))}**. "
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


def html_page(
    report: ReportRecord,
    models: Sequence[ModelRecord],
    profile: ProfileRecord | None,
    microbench: MicrobenchRecord | None = None,
    highlight: Sequence[str] | None = None,
) -> str:
    import base64

    import jinja2

    from actprof import plots

    def fig(png: bytes, alt: str) -> dict[str, str]:
        return {"data": base64.b64encode(png).decode("ascii"), "alt": alt}

    shown = list(highlight) if highlight else default_highlight(report)
    curves = {"baseline": report.baseline, "highlight": shown if len(models) > 5 else None}
    figures: dict[str, list[dict[str, str]]] = {
        "answer": [],
        "curves": [
            fig(plots.accuracy_curves(models, x="steps", **curves), "Validation accuracy vs training steps"),
            fig(plots.accuracy_curves(models, x="seconds", **curves), "Validation accuracy vs training seconds"),
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
        loader=jinja2.PackageLoader("actprof", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    target = f"{100 * report.target_accuracy:.0f}% validation accuracy" if report.target_accuracy else "none reached"
    page = env.get_template("report.html.j2")
    network = describe(report.architecture)
    return page.render(report=report, tables=tables, figures=figures, target=target, matrices=matrices, network=network)


def _csv_cell(value: object) -> object:
    # A cell starting with = + - @ is a formula to a spreadsheet: neutralise text, keep numbers.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def csv_text(report: ReportRecord) -> str:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "activation",
            "network",
            "lr",
            "recipe",
            "init",
            "precision",
            "test_accuracy",
            "onnx_test_accuracy",
            "train_img_per_s",
            "seconds_to_97",
            "seconds_to_98",
            "provider",
            "inference_precision",
            "batch",
            "mode",
            "p50_ms",
            "p99_ms",
            "ratio_vs_baseline",
            "ratio_low",
            "ratio_high",
        ]
    )
    for s in report.activations:
        t97, t98 = (getattr(reached(s.time_to_accuracy, t), "seconds", None) for t in (0.97, 0.98))
        common = [
            s.name,
            report.architecture,
            s.lr,
            s.recipe,
            s.init,
            s.precision,
            s.test_accuracy,
            s.onnx_test_accuracy,
            s.images_per_second,
            t97,
            t98,
        ]
        for r in s.latency or [None]:
            latency = (
                [r.provider, r.precision, r.batch, r.mode, r.p50_ms, r.p99_ms]
                + ([r.vs_baseline.value, r.vs_baseline.low, r.vs_baseline.high] if r.vs_baseline else ["", "", ""])
                if r
                else [""] * 9
            )
            writer.writerow([_csv_cell(v) for v in common + latency])
    return buffer.getvalue()


def write_reports(
    out: Path,
    formats: Sequence[str],
    report: ReportRecord,
    models: Sequence[ModelRecord],
    profile: ProfileRecord | None,
    microbench: MicrobenchRecord | None = None,
    highlight: Sequence[str] | None = None,
) -> list[Path]:
    from actprof.storage import write_json, write_text_atomic

    written = []
    if "md" in formats:
        text = markdown(report, profile, microbench)
        write_text_atomic(out / "report.md", text)
        written.append(out / "report.md")
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(text + "\n")
    if "html" in formats:
        write_text_atomic(out / "report.html", html_page(report, models, profile, microbench, highlight))
        written.append(out / "report.html")
    if "json" in formats:
        write_json(out / "report.json", report)
        written.append(out / "report.json")
    if "csv" in formats:
        write_text_atomic(out / "report.csv", csv_text(report))
        written.append(out / "report.csv")
    return written


def print_diff(changes: Sequence[Change], *, threshold: float, console: Console) -> None:
    rows = [
        {
            "what": c.what,
            "base": f"{c.base:.4f}",
            "new": f"{c.new:.4f}",
            "change": f"{100 * (c.new / c.base - 1):+.1f}%" if c.base else "—",
            "status": "REGRESSED" if c.regressed else "ok",
        }
        for c in changes
    ]
    console.print(_rich_table(f"Diff (threshold {100 * threshold:g}%)", rows))


# --- bring your own model ----------------------------------------------------------------------------


def _swap_caption(record: SwapRecord) -> str:
    spec = record.inputs[0]
    freed = (
        f" To run at other batch sizes, the hard-coded batch of Reshape {', '.join(record.batch_reshapes)} was made -1."
        if record.batch_reshapes
        else ""
    )
    return (
        f"{record.model} (opset {record.opset}); input {spec.name} {'x'.join(map(str, spec.shape))} {spec.dtype}, "
        f"{spec.source}. {record.note.capitalize()}. Ratios: median of per-round ratios to the original on the "
        f"same runtime and precision, each runtime's variants in rounds of their own [95% CI].{freed}"
    )


def print_swap(record: SwapRecord, *, console: Console) -> None:
    from rich.markup import escape

    console.print(_rich_table("Activation sites", swap_site_rows(record)))
    console.print(_rich_table("The activation tax", swap_rows(record), escape(_swap_caption(record))))


def swap_markdown(record: SwapRecord) -> str:
    parts = [
        f"# actprof swap: the activation tax of {_md_escape(Path(record.model).name)}\n",
        f"**{_md_escape(record.note.capitalize())}.**\n",
        "## The activation tax\n",
        _md_table(swap_rows(record)),
        "\n" + _md_escape(_swap_caption(record)) + "\n",
        "\n## Activation sites\n",
        _md_table(swap_site_rows(record)),
        "\n## What each runtime fused\n",
        _md_table(fusion_rows(record)),
    ]
    if record.calibration:
        parts.append(f"\nint8 calibration: {_md_escape(record.calibration)}\n")
    return "\n".join(parts)


def swap_html(record: SwapRecord) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("actprof", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    tables = {
        "tax": _html_table(swap_rows(record)),
        "sites": _html_table(swap_site_rows(record)),
        "fusion": _html_table(fusion_rows(record)),
    }
    return env.get_template("swap.html.j2").render(record=record, tables=tables, caption=_swap_caption(record))


def swap_csv(record: SwapRecord) -> str:
    import csv

    buffer = io.StringIO()
    rows = swap_rows(record)
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["variant"])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    return buffer.getvalue()


def write_swap_reports(out: Path, record: SwapRecord) -> list[Path]:
    from actprof.storage import write_json, write_text_atomic

    files = {"swap.md": swap_markdown(record), "swap.html": swap_html(record), "swap.csv": swap_csv(record)}
    write_json(out / "swap.json", record)
    for name, text in files.items():
        write_text_atomic(out / name, text)
    return [out / "swap.json", *(out / name for name in files)]
