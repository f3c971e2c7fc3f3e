"""Everything a person reads: rich tables in the terminal, Markdown, HTML with plots, JSON and CSV.

This is the only module that formats output; the stages hand it records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from actprof.environment import Environment
    from actprof.records import ModelRecord


def _pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: float | None, fmt: str = ",.0f") -> str:
    return "—" if x is None else format(x, fmt)


def _reached(record: ModelRecord, target: float) -> tuple[int | None, float | None]:
    hit = next((t for t in record.train.time_to_accuracy if abs(t.target - target) < 1e-9), None)
    return (hit.step, hit.seconds) if hit else (None, None)


def training_rows(records: Sequence[ModelRecord]) -> list[dict[str, str]]:
    rows = []
    for r in records:
        steps97, secs97 = _reached(r, 0.97)
        steps98, secs98 = _reached(r, 0.98)
        rows.append(
            {
                "activation": r.activation.name,
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


def print_environment(env: Environment, *, console: Console, providers: dict[str, str] | None = None) -> None:
    rows = [
        {"": "actprof", "value": env.actprof},
        {"": "python", "value": env.python},
        {"": "platform", "value": env.platform},
        {"": "CPU", "value": f"{env.cpu_model} ({env.cpu_count} logical cores)"},
        *({"": name, "value": version} for name, version in env.versions.items()),
    ]
    for name, status in (providers or {}).items():
        rows.append({"": name, "value": status})
    console.print(_rich_table("Environment", rows))
