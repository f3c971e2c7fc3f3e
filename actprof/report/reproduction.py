"""A reproduction as people read it: Markdown for a repository or CI, and rich tables in the terminal."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from actprof.report.format import p_cell, pct
from actprof.schema.reproduction import ReproducedContrast, ReproducedValue, ReproductionRecord
from actprof.schema.storage import write_json, write_text_atomic
from actprof.settings.literature import COST_MEASURED_ON, METRICS, Experiment

REACH_WORDS = {
    "inside": "yes",
    "above": "no: above",
    "below": "no: below",
    "—": "—",
}


def write(record: ReproductionRecord, out: Path) -> list[Path]:
    """``reproduction.json`` and ``reproduction.md`` in ``out``, each written whole or not at all."""
    json_path, md_path = out / "reproduction.json", out / "reproduction.md"
    write_json(json_path, record)
    write_text_atomic(md_path, markdown(record))
    return [json_path, md_path]


def _cost(record: ReproductionRecord) -> str:
    steps = f"Training steps: {record.training_seconds / 60:.1f} min over every run (validation and export excluded)"
    if record.resumed:
        return f"{steps}; this call resumed {record.resumed} saved run(s) and took {record.wall_seconds / 60:.1f} min"
    return f"{steps}; the whole call took {record.wall_seconds / 60:.1f} min"


def _measured(value: ReproducedValue) -> str:
    m = value.measured
    if m.n == 0:
        return "—"
    if m.n == 1 or math.isnan(m.low):
        return f"{pct(m.mean)} (n=1)"
    return f"{pct(m.mean)} [{pct(m.low)}, {pct(m.high)}] (n={m.n})"


def _one_run(value: ReproducedValue) -> str:
    if math.isnan(value.one_run_low):
        return "—"
    return f"{pct(max(value.one_run_low, 0.0))} – {pct(min(value.one_run_high, 1.0))}"


def _points(x: float | None) -> str:
    return "—" if x is None or math.isnan(x) else f"{100 * x:+.2f}"


def _contrast_measured(c: ReproducedContrast) -> str:
    m = c.measured
    if m.n == 0:
        return "—"
    if math.isnan(m.low):
        return f"{_points(m.mean)} (n={m.n})"
    return f"{_points(m.mean)} [{_points(m.low)}, {_points(m.high)}]"


def value_rows(record: ReproductionRecord) -> list[list[str]]:
    return [
        [
            v.cell,
            v.label,
            METRICS.get(v.metric, v.metric),
            pct(v.published) + (f" ({v.note})" if v.note else "") if v.published is not None else "—",
            _measured(v),
            _one_run(v),
            REACH_WORDS.get(v.reach, v.reach),
        ]
        for v in record.values
    ]


def contrast_rows(record: ReproductionRecord) -> list[list[str]]:
    return [
        [
            c.what,
            METRICS.get(c.metric, c.metric),
            _points(c.published),
            _contrast_measured(c),
            p_cell(c.p),
            c.call,
        ]
        for c in record.contrasts
    ]


VALUE_HEADER = ["network", "activation", "metric", "published", "actprof: mean [95% CI]", "one run's 95% range",
                "published run inside?"]  # fmt: skip
CONTRAST_HEADER = ["difference", "metric", "published (points)", "actprof (points) [95% CI]", "p", "call"]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    escape = lambda cell: cell.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]


def markdown(record: ReproductionRecord) -> str:
    env = record.environment
    short = record.epochs != record.published_epochs
    lines = [
        f"# Reproduction: {record.title}",
        "",
        f"Source: {record.source}. Claim: {record.claim}.",
        "",
        f"Recipe: {record.recipe}. Networks: {'; '.join(record.networks)}. Data: {record.dataset}. Seeds: "
        f"{', '.join(map(str, record.seeds))}. {_cost(record)} on {env.cpu_model} ({env.cpu_count} cores), torch "
        f"{env.versions.get('torch', '?')}.",
        "",
    ]
    if short:
        lines += [
            f"**Shortened: {record.epochs} of the published {record.published_epochs} epochs.** The numbers below are "
            "not the published experiment's; run without --epochs to compare.",
            "",
        ]
    if "sample" in record.dataset:
        lines += ["**On the bundled MNIST sample, not the full set**: give --data-dir to compare.", ""]
    lines += ["## Published numbers beside actprof's", ""]
    lines += _md_table(VALUE_HEADER, value_rows(record))
    lines += [
        "",
        "Each published number is one run. *One run's 95% range* is where a single run of actprof's recipe is "
        "expected to land (mean ± t·s·√(1 + 1/n) over the seeds); *published run inside?* asks whether the "
        "published run falls in it.",
        "",
        "## The differences the claim rests on",
        "",
    ]
    lines += _md_table(CONTRAST_HEADER, contrast_rows(record))
    lines += [
        "",
        "Differences in accuracy points, paired by seed (the same seed draws the same data order for every "
        "network). *reproduces*: actprof's 95% interval of the mean difference excludes zero on the published side, "
        "and the published difference (one pair of runs) lies in the range one pair of actprof's runs gives; *same "
        "sign, another size*: the sign holds, the size does not; *contradicts*: the interval excludes zero on the "
        "other side; *within noise*: it spans zero.",
        "",
        *(["## Runs that failed", "", *[f"- {f}" for f in record.failures], ""] if record.failures else []),
        "## Where actprof's run differs from the source",
        "",
        *[f"- {d}" for d in record.differences],
        "",
    ]
    return "\n".join(lines)


def print_reproduction(record: ReproductionRecord, console: Console) -> None:
    values = Table(title=f"{record.experiment}: published numbers beside actprof's", title_style="bold")
    for i, name in enumerate(VALUE_HEADER):
        values.add_column(name, justify="right" if i >= 3 else "left")
    for row in value_rows(record):
        values.add_row(*row)
    console.print(values)
    contrasts = Table(title="The differences the claim rests on (accuracy points, paired by seed)", title_style="bold")
    for i, name in enumerate(CONTRAST_HEADER):
        contrasts.add_column(name, justify="right" if 1 < i < 5 else "left")
    for row in contrast_rows(record):
        contrasts.add_row(*row)
    console.print(contrasts)
    if record.epochs != record.published_epochs:
        console.print(f"[bold]shortened:[/] {record.epochs} of the published {record.published_epochs} epochs")


def listing(experiments: list[Experiment]) -> Table:
    table = Table(
        title="Published experiments actprof reproduces",
        title_style="bold",
        caption=f"cost: wall time for 3 seeds on {COST_MEASURED_ON}, full MNIST",
    )
    for name in ("name", "what", "networks", "activations", "epochs", "cost", "source"):
        table.add_column(name, overflow="fold")
    for e in experiments:
        table.add_row(
            e.name,
            e.title,
            ", ".join(f"{c.label} ({c.model})" for c in e.cells),
            ", ".join(a.label for a in e.arms),
            str(e.epochs),
            e.cost,
            e.source,
        )
    return table
