"""Everything a person reads: rich tables in the terminal, Markdown, HTML with plots, JSON and CSV.

This is the only module that formats output; the stages hand it records.
"""

from __future__ import annotations

import html
import io
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from actprof.records import reached

if TYPE_CHECKING:
    from markupsafe import Markup
    from rich.console import Console

    from actprof.environment import Environment
    from actprof.records import (
        ActivationSummary,
        GpuInfo,
        Interval,
        MicrobenchRecord,
        ModelRecord,
        PairedComparison,
        ProfileRecord,
        ProviderStatus,
        ReportRecord,
    )
    from actprof.verdict import Change


def _pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: float | None, fmt: str = ",.0f") -> str:
    return "—" if x is None else format(x, fmt)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}"
        n /= 1024
    return f"{n:,.0f} GiB"


def _reached(record: ModelRecord, target: float) -> tuple[int | None, float | None]:
    hit = reached(record.train.time_to_accuracy, target)
    return (hit.step, hit.seconds) if hit else (None, None)


def training_rows(records: Sequence[ModelRecord]) -> list[dict[str, str]]:
    rows = []
    for r in records:
        steps97, secs97 = _reached(r, 0.97)
        steps98, secs98 = _reached(r, 0.98)
        rows.append(
            {
                "activation": r.name,
                "init": r.activation.init,
                "train prec": r.train.config.precision,
                "test acc": _pct(r.train.test_accuracy),
                "ONNX acc": _pct(r.export.onnx_test_accuracy),
                "→97% steps/s": f"{_num(steps97)} / {_num(secs97, '.1f')}",
                "→98% steps/s": f"{_num(steps98)} / {_num(secs98, '.1f')}",
                "img/s": _num(r.train.images_per_second),
                "mean act l1/l2/l3": "/".join(f"{s.mean_activation:+.2f}" for s in r.train.layer_stats),
                "dead % l1/l2/l3": "/".join(f"{100 * s.dead_fraction:.0f}" for s in r.train.layer_stats),
                "max|Δlogit|": f"{r.export.parity.max_abs_diff:.0e}",
                "ONNX act ops": " ".join(f"{op}×{n}" for op, n in r.export.activation_census.items())
                + (" (decomposed)" if r.export.decomposed else ""),
            }
        )
    return rows


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


def _interval(iv: Interval | None, fmt: str = ".2f", unit: str = "") -> str:
    if iv is None or math.isnan(iv.value):
        return "—"
    return f"{iv.value:{fmt}}{unit} [{iv.low:{fmt}}, {iv.high:{fmt}}]"


def latency_rows(record: ProfileRecord) -> list[dict[str, str]]:
    rows = []
    for r in record.latency:
        if r.variant != "as-trained":
            continue
        rows.append(
            {
                "provider": r.provider + ("" if r.mode == "compute" else f" ({r.mode})"),
                "batch": str(r.batch),
                "activation": r.model,
                "p50 ms": f"{r.stats.p50_ms:.4f}",
                "p99 ms": f"{r.stats.p99_ms:.4f}",
                "CV": f"{r.stats.cv:.2f}",
                "img/s": _num(r.stats.throughput),
                f"× {record.baseline or 'baseline'} [95% CI]": _interval(r.vs_baseline, ".2f", "×"),
                "runs": f"{r.stats.runs:,}",
            }
        )
    return rows


def ablation_rows(record: ProfileRecord) -> list[dict[str, str]]:
    return [
        {
            "provider": a.provider,
            "batch": str(a.batch),
            "activation": a.model,
            "as trained ms": f"{a.as_trained_ms:.4f}",
            "ReLU swapped in": _num(a.relu_swap_ms, ".4f"),
            "identity swapped in": f"{a.identity_ms:.4f}",
            "activation cost ms [CI]": _interval(a.activation_cost_ms, ".4f"),
            "cost over ReLU ms [CI]": _interval(a.penalty_vs_relu_ms, ".4f"),
        }
        for a in record.ablation
    ]


def op_rows(record: ProfileRecord, top: int = 4) -> list[dict[str, str]]:
    rows = []
    for p in record.op_profiles:
        rows.append(
            {
                "provider": p.provider,
                "batch": str(p.batch),
                "activation": p.model,
                "timed": "host launch" if p.clock == "launch" else "kernel",
                "total µs/run": f"{p.total_us_per_run:,.1f}",
                "activation op": f"{p.activation_us_per_run:,.1f} µs ({100 * p.activation_share:.0f}%)",
                "layout reorders": f"{p.layout_us_per_run:,.1f} µs",
                "top ops": ", ".join(f"{o.op_type} {100 * o.share:.0f}%" for o in p.ops[:top]),
                "off-provider nodes": str(len(p.foreign_nodes)) if p.foreign_nodes else "0",
            }
        )
    return rows


LAUNCH_CLOCK_NOTE = (
    "CUDA rows time the host-side launch of each node, not the GPU kernel: the CUDA provider runs "
    "asynchronously and ORT's pip build has no CUPTI. They rank dispatch overhead; the ablation's "
    "identity swap gives an activation's GPU cost."
)


def op_notes(record: ProfileRecord) -> str:
    """What a reader of the per-op table must know: launch-time clocks, nodes that ran off the provider."""
    notes = [LAUNCH_CLOCK_NOTE] if any(p.clock == "launch" for p in record.op_profiles) else []
    off: dict[tuple[str, str], set[str]] = {}
    for p in record.op_profiles:  # every batch and optimization level, each node named once
        off.setdefault((p.model, p.provider), set()).update(p.foreign_nodes)
    notes += [
        f"{model} on {provider}: {', '.join(sorted(nodes))} ran off the requested provider (an op with no "
        "kernel there), with copies between devices in the timed path."
        for (model, provider), nodes in off.items()
        if nodes
    ]
    return " ".join(notes)


def fusion_rows(record: ProfileRecord) -> list[dict[str, str]]:
    return [
        {
            "provider": f.provider,
            "opt level": f.opt_level,
            "activation": f.model,
            "activation nodes left": " ".join(f"{op}×{n}" for op, n in f.activation_nodes_left.items()) or "none",
            "fused into": " ".join(f"{op}×{n}" for op, n in f.fused.items()) or "nothing",
            "layout reorders": str(f.reorders),
        }
        for f in record.fusion
    ]


def print_profile(record: ProfileRecord, *, console: Console) -> None:
    s, env = record.settings, record.environment
    ort_version = env.versions.get("onnxruntime-gpu") or env.versions.get("onnxruntime")
    caption = (
        f"ORT {ort_version}, {env.cpu_model}, threads {s.threads or 'ORT default'}, "
        f"opt level {','.join(s.opt_levels)}; ratios: median of per-round ratios in interleaved rounds, "
        "bootstrap 95% CI"
    )
    console.print(_rich_table("Inference latency", latency_rows(record), caption))
    if record.ablation:
        console.print(
            _rich_table(
                "Ablation: same weights, activation swapped",
                ablation_rows(record),
                "cost = as trained − identity; over ReLU = as trained − ReLU swapped in (median per-round difference)",
            )
        )
    from rich.markup import escape

    notes = op_notes(record)  # node names come from the model file: never rich markup
    console.print(_rich_table("Per-op time (separate profiling session)", op_rows(record), escape(notes) or None))
    console.print(_rich_table("What ORT fused", fusion_rows(record)))


def microbench_rows(record: MicrobenchRecord) -> list[dict[str, str]]:
    return [
        {
            "provider": r.provider,
            "size": _bytes(4 * r.elements),
            "op": r.op,
            "ONNX": "+".join(r.onnx_ops),
            "p50 ms": f"{r.p50_ms:,.3f}",
            "GB/s": f"{r.gbps:,.1f}",
            "of copy": f"{100 * r.fraction_of_copy:.0f}%",
        }
        for r in record.results
    ]


def print_microbench(record: MicrobenchRecord, *, console: Console) -> None:
    caption = (
        "bytes moved = one float32 read + one write per element; copy = ORT Identity (a memcpy) over the same "
        "tensor, same run; in cache, parallel ops can beat it; far below 100% at the DRAM size = compute-bound"
    )
    console.print(_rich_table("Activation ops alone", microbench_rows(record), caption))


# --- the report: terminal, Markdown, HTML, JSON, CSV ---------------------------------------------

FORMATS = ("table", "md", "html", "json", "csv")


def parse_formats(spec: str) -> list[str]:
    from actprof.errors import UsageError

    items = [s.strip().lower() for s in spec.split(",") if s.strip()]
    if not items or any(s not in FORMATS for s in items):
        raise UsageError(f"unknown --format {spec!r}; choose from: {', '.join(FORMATS)}")
    return list(dict.fromkeys(items))


def _seconds_to(summary: ActivationSummary, target: float) -> str:
    hit = reached(summary.time_to_accuracy, target)
    return "not reached" if hit is None or hit.seconds is None else f"{hit.step} / {hit.seconds:.1f} s"


def _accuracy(s: ActivationSummary) -> str:
    e = s.over_seeds.get("test accuracy")
    if e is None or e.n < 2:
        return _pct(s.test_accuracy)
    return f"{100 * e.mean:.2f}% ± {100 * (e.high - e.mean):.2f} (n={e.n})"


def seed_rows(report: ReportRecord) -> list[dict[str, str]]:
    """Per activation, mean ± 95% CI over seeds (several seeds only)."""

    def cell(s: ActivationSummary, key: str, scale: float = 1.0, fmt: str = ".2f") -> str:
        e = s.over_seeds.get(key)
        if e is None or e.n == 0:
            return f"never (0/{len(s.seeds)})"
        half = "" if math.isnan(e.high) else f" ± {scale * (e.high - e.mean):{fmt}}"
        reached = f" ({e.n}/{len(s.seeds)})" if e.n < len(s.seeds) else ""
        return f"{scale * e.mean:{fmt}}{half}{reached}"

    return [
        {
            "activation": s.name,
            "seeds": str(len(s.seeds)),
            "test acc %": cell(s, "test accuracy", 100),
            "test loss": cell(s, "test loss", 1, ".4f"),
            "s → 97%": cell(s, "seconds to 97%", 1, ".1f"),
            "s → 98%": cell(s, "seconds to 98%", 1, ".1f"),
            "steps → 97%": cell(s, "steps to 97%", 1, ".0f"),
        }
        for s in report.activations
        if len(s.seeds) > 1
    ]


def evidence_rows(report: ReportRecord) -> list[dict[str, str]]:
    """Every paired comparison with the baseline (several seeds only)."""
    rows = []
    for s in report.activations:
        for c in s.vs_baseline:
            scale = 100 if "accuracy" in c.what else 1
            unit = " pp" if "accuracy" in c.what else ""
            rows.append(
                {
                    "activation": s.name,
                    f"vs {report.baseline}": c.what,
                    "seeds": str(c.n),
                    "mean Δ": "—" if math.isnan(c.mean_difference) else f"{scale * c.mean_difference:+.3f}{unit}",
                    "95% CI": "—" if math.isnan(c.low) else f"[{scale * c.low:+.3f}, {scale * c.high:+.3f}]",
                    "p": "—" if math.isnan(c.p_value) else f"{c.p_value:.3f}",
                    "d_z": "—" if math.isnan(c.effect_size) else f"{c.effect_size:+.2f}",
                    "verdict": _significance(c),
                    "reached": c.reached,
                }
            )
    return rows


def _significance(c: PairedComparison) -> str:
    if c.n < 2:
        return "too few seeds"
    if not c.significant:
        return "within noise"
    better = (c.mean_difference > 0) == c.higher_is_better
    return "significantly " + ("better" if better else "worse")


def convergence_rows(report: ReportRecord) -> list[dict[str, str]]:
    return [
        {
            "activation": s.name,
            "init": s.init,
            "test acc": _accuracy(s),
            "ONNX acc": _pct(s.onnx_test_accuracy),
            "steps / s → 97%": _seconds_to(s, 0.97),
            "steps / s → 98%": _seconds_to(s, 0.98),
            "train img/s": _num(s.images_per_second),
            "mean act l1/l2/l3": "/".join(f"{m:+.2f}" for m in s.mean_activation),
            "dead % l1/l2/l3": "/".join(f"{100 * d:.0f}" for d in s.dead_fraction),
            "data": f"{s.dataset}, {s.epochs} ep, {s.precision}",
        }
        for s in report.activations
    ]


def print_report(
    report: ReportRecord,
    profile: ProfileRecord | None,
    *,
    console: Console,
    microbench: MicrobenchRecord | None = None,
) -> None:
    console.print(_rich_table("Convergence", convergence_rows(report), "steps / training seconds to reach"))
    if any(s.vs_baseline for s in report.activations):
        console.print(_rich_table("Over seeds: mean ± 95% CI", seed_rows(report)))
        console.print(_rich_table("Paired by seed, against the baseline", evidence_rows(report)))
    if profile:
        print_profile(profile, console=console)
    if microbench:
        print_microbench(microbench, console=console)
    console.rule("Verdict")
    for v in report.verdicts:
        style = "dim" if v.latency_within_noise else None
        console.print(v.summary, style=style, markup=False, highlight=False)


def _md_escape(text: str) -> str:
    """Text from files is data: no HTML, no Markdown emphasis or links, no table breaks."""
    text = html.escape(str(text), quote=True)
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
        f"Baseline **{_md_escape(report.baseline)}**, target validation accuracy {target}; "
        f"{_md_escape(env.cpu_model)}, {env.cpu_count} cores; "
        + ", ".join(f"{_md_escape(k)} {_md_escape(v)}" for k, v in env.versions.items())
        + "\n",
        "## Verdict\n",
        *(
            f"- {_md_escape(v.summary)}{' _(within noise)_' if v.latency_within_noise else ''}\n"
            for v in report.verdicts
        ),
        "\n## Convergence\n",
        _md_table(convergence_rows(report)),
    ]
    if any(s.vs_baseline for s in report.activations):
        parts += ["\n## Over seeds: mean ± 95% CI\n", _md_table(seed_rows(report))]
        parts += ["\n## Paired by seed, against the baseline\n", _md_table(evidence_rows(report))]
    if profile:
        parts += ["\n## Inference latency\n", _md_table(latency_rows(profile))]
        if profile.ablation:
            parts += ["\n## Ablation (same weights, activation swapped)\n", _md_table(ablation_rows(profile))]
        parts += ["\n## Per-op time\n", _md_table(op_rows(profile))]
        if op_notes(profile):
            parts += ["\n" + _md_escape(op_notes(profile)) + "\n"]
        parts += ["\n## What ONNX Runtime fused\n", _md_table(fusion_rows(profile))]
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


def html_page(
    report: ReportRecord,
    models: Sequence[ModelRecord],
    profile: ProfileRecord | None,
    microbench: MicrobenchRecord | None = None,
) -> str:
    import base64

    import jinja2

    from actprof import plots

    def fig(png: bytes, alt: str) -> dict[str, str]:
        return {"data": base64.b64encode(png).decode("ascii"), "alt": alt}

    figures: dict[str, list[dict[str, str]]] = {
        "curves": [
            fig(plots.accuracy_curves(models, x="steps"), "Validation accuracy vs training steps"),
            fig(plots.accuracy_curves(models, x="seconds"), "Validation accuracy vs training seconds"),
        ],
        "latency": [],
        "ops": [],
    }
    tables = dict.fromkeys(("evidence", "seeds", "roofline", "latency", "ablation", "ops", "ops_note", "fusion"), "")
    tables["convergence"] = _html_table(convergence_rows(report))
    if any(s.vs_baseline for s in report.activations):
        tables["seeds"] = _html_table(seed_rows(report))
        tables["evidence"] = _html_table(evidence_rows(report))
    if profile:
        for provider in sorted({r.provider for r in profile.latency}):
            for batch in sorted({r.batch for r in profile.latency if r.provider == provider}):
                where = f"{provider}, batch {batch}"
                figures["latency"].append(
                    fig(plots.latency_bars(profile, provider=provider, batch=batch), f"p50 latency, {where}")
                )
                figures["latency"].append(
                    fig(
                        plots.pareto(report, provider=provider, batch=batch),
                        f"Latency vs time to target accuracy, {where}",
                    )
                )
                figures["ops"].append(
                    fig(plots.op_shares(profile, provider=provider, batch=batch), f"Per-op time, {where}")
                )
        tables |= {
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
    return env.get_template("report.html.j2").render(report=report, tables=tables, figures=figures, target=target)


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
            "init",
            "precision",
            "test_accuracy",
            "onnx_test_accuracy",
            "train_img_per_s",
            "seconds_to_97",
            "seconds_to_98",
            "provider",
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
                [r.provider, r.batch, r.mode, r.p50_ms, r.p99_ms]
                + ([r.vs_baseline.value, r.vs_baseline.low, r.vs_baseline.high] if r.vs_baseline else ["", "", ""])
                if r
                else [""] * 8
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
) -> list[Path]:
    from actprof.records import write_json, write_text_atomic

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
        write_text_atomic(out / "report.html", html_page(report, models, profile, microbench))
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
