"""The report's files: Markdown, HTML, JSON and CSV, each written atomically; and ``swap``'s."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from actprof.report.html import html_page, swap_html
from actprof.report.markdown import markdown, swap_markdown
from actprof.report.swap_tables import swap_rows
from actprof.schema.storage import write_json, write_text_atomic
from actprof.schema.training import reached
from actprof.settings.parse import parse_choices

if TYPE_CHECKING:
    from actprof.schema.profiling import MicrobenchRecord, ProfileRecord
    from actprof.schema.reports import ReportRecord
    from actprof.schema.swap import SwapRecord
    from actprof.schema.training import ModelRecord


FORMATS = ("table", "md", "html", "json", "csv")


def parse_formats(spec: str) -> list[str]:
    return parse_choices(spec, FORMATS, "--format")


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
    files = {"swap.md": swap_markdown(record), "swap.html": swap_html(record), "swap.csv": swap_csv(record)}
    write_json(out / "swap.json", record)
    for name, text in files.items():
        write_text_atomic(out / name, text)
    return [out / "swap.json", *(out / name for name in files)]
