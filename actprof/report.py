"""Everything a person reads: rich tables in the terminal, Markdown, HTML with plots, JSON and CSV.

This is the only module that formats output; the stages hand it records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from actprof.environment import Environment
    from actprof.records import (
        GpuInfo,
        Interval,
        MicrobenchRecord,
        ModelRecord,
        ProfileRecord,
        ProviderStatus,
    )


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
    rows.append(
        {"": "GPU", "value": f"{gpu.name}, driver {gpu.driver}, {gpu.memory_mib:,} MiB" if gpu else "none"}
    )
    for status in providers:
        state = (
            "binds"
            if status.binds
            else ("compiled in, does not bind" if status.compiled else "not compiled in")
        )
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
                "total µs/run": f"{p.total_us_per_run:,.1f}",
                "activation op": f"{p.activation_us_per_run:,.1f} µs ({100 * p.activation_share:.0f}%)",
                "layout reorders": f"{p.layout_us_per_run:,.1f} µs",
                "top ops": ", ".join(f"{o.op_type} {100 * o.share:.0f}%" for o in p.ops[:top]),
                "off-provider nodes": str(len(p.foreign_nodes)) if p.foreign_nodes else "0",
            }
        )
    return rows


def fusion_rows(record: ProfileRecord) -> list[dict[str, str]]:
    return [
        {
            "provider": f.provider,
            "opt level": f.opt_level,
            "activation": f.model,
            "activation nodes left": " ".join(f"{op}×{n}" for op, n in f.activation_nodes_left.items())
            or "none",
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
                "cost = as trained − identity; over ReLU = as trained − ReLU swapped in "
                "(median per-round difference)",
            )
        )
    console.print(_rich_table("Per-op time (separate profiling session)", op_rows(record)))
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
        "bytes moved = one float32 read + one write per element; copy = ORT Identity over the same tensor, "
        "same run; fractions far below 100% at the DRAM size mean the op is compute-bound"
    )
    console.print(_rich_table("Activation ops alone", microbench_rows(record), caption))
