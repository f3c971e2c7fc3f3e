"""The rows of the inference tables, as plain strings: latency, ablation, per-op time, fusion, the deployment
matrix and its cells, the rewrite, the microbenchmark. One source for the terminal, Markdown and HTML."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actprof.report.format import interval, num, pct, size

if TYPE_CHECKING:
    from actprof.schema.profiling import MicrobenchRecord, ProfileRecord


LAUNCH_CLOCK_NOTE = (
    "CUDA rows time the host-side launch of each node, not the GPU kernel: the CUDA provider runs "
    "asynchronously and ORT's pip build has no CUPTI. They rank dispatch overhead; the ablation's "
    "identity swap gives an activation's GPU cost."
)


def latency_rows(record: ProfileRecord) -> list[dict[str, str]]:
    rows = []
    for r in record.latency:
        if r.variant != "as-trained":
            continue
        rows.append(
            {
                "provider": r.provider + ("" if r.mode == "compute" else f" ({r.mode})"),
                "precision": r.precision,
                "batch": str(r.batch),
                "activation": r.model,
                "p50 ms": f"{r.stats.p50_ms:.4f}",
                "p99 ms": f"{r.stats.p99_ms:.4f}",
                "CV": f"{r.stats.cv:.2f}",
                "img/s": num(r.stats.throughput),
                f"× {record.baseline or 'baseline'} [95% CI]": interval(r.vs_baseline, ".2f", "×"),
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
            "ReLU swapped in": num(a.relu_swap_ms, ".4f"),
            "identity swapped in": f"{a.identity_ms:.4f}",
            "activation cost ms [CI]": interval(a.activation_cost_ms, ".4f"),
            "cost over ReLU ms [CI]": interval(a.penalty_vs_relu_ms, ".4f"),
        }
        for a in record.ablation
    ]


def op_rows(record: ProfileRecord, top: int = 4) -> list[dict[str, str]]:
    rows = []
    for p in record.op_profiles:
        rows.append(
            {
                "provider": p.provider,
                "precision": p.precision,
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
            "precision": f.precision,
            "opt level": f.opt_level,
            "activation": f.model,
            "activation nodes left": " ".join(f"{op}×{n}" for op, n in f.activation_nodes_left.items()) or "none",
            "fused into": " ".join(f"{op}×{n}" for op, n in f.fused.items()) or "nothing",
            "between DQ and Q (int8)": " ".join(f"{op}×{n}" for op, n in f.qdq_wrapped.items()) or "—",
            "layout reorders": str(f.reorders),
        }
        for f in record.fusion
    ]


# --- the deployment matrix ---------------------------------------------------------------------------

ACCURACY_SLACK = 0.005  # a deployment "keeps" the model's accuracy within half a point of its fp32 model


def deployment_targets(record: ProfileRecord) -> list[tuple[str, str]]:
    """(provider, precision) pairs profiled, in the order they ran."""
    return list(dict.fromkeys((c.provider, c.precision) for c in record.deployments))


def _compute_latency(record: ProfileRecord, model: str, provider: str, precision: str, batch: int):
    return next(
        (
            r
            for r in record.latency
            if (r.model, r.provider, r.precision, r.batch) == (model, provider, precision, batch)
            and r.variant == "as-trained"
            and r.mode == "compute"
        ),
        None,
    )


def fp32_accuracy(record: ProfileRecord, model: str) -> float | None:
    """The model's accuracy at fp32 on the deployment test split (ORT's CPU cell first)."""
    cells = sorted(
        (c for c in record.deployments if c.model == model and c.precision == "fp32"), key=lambda c: c.provider != "cpu"
    )
    return cells[0].accuracy if cells else None


def cheapest_deployment(record: ProfileRecord, model: str, batch: int) -> str:
    """The lowest-latency (provider, precision) whose accuracy is within ACCURACY_SLACK of the fp32 model."""
    reference = fp32_accuracy(record, model)
    candidates = []
    for cell in record.deployments:
        timed = _compute_latency(record, model, cell.provider, cell.precision, batch)
        if cell.model != model or timed is None:
            continue
        if reference is None or cell.accuracy >= reference - ACCURACY_SLACK:
            candidates.append((timed.stats.p50_ms, f"{cell.provider} {cell.precision}"))
    return min(candidates)[1] if candidates else "—"


def deployment_rows(record: ProfileRecord, batch: int) -> list[dict[str, str]]:
    """Rows: activation; columns: each (provider, precision) — p50, ratio to the baseline there [CI], accuracy."""
    rows = []
    for model in dict.fromkeys(c.model for c in record.deployments):
        row = {"activation": model}
        for provider, precision in deployment_targets(record):
            timed = _compute_latency(record, model, provider, precision, batch)
            cell = next(
                (c for c in record.deployments if (c.model, c.provider, c.precision) == (model, provider, precision)),
                None,
            )
            if timed is None or cell is None:
                row[f"{provider} {precision}"] = "—"
                continue
            ratio = interval(timed.vs_baseline, ".2f", "×") if model != record.baseline else "baseline"
            row[f"{provider} {precision}"] = f"{1000 * timed.stats.p50_ms:,.0f} µs · {ratio} · {pct(cell.accuracy)}"
        row["cheapest within 0.5 pt of fp32"] = cheapest_deployment(record, model, batch)
        rows.append(row)
    return rows


def rewrite_rows(record: ProfileRecord) -> list[dict[str, str]]:
    """For each activation with an exact rewrite: the rewrite's p50 over the original's on every deployment
    and batch, and which of the two to ship there (the rewrite can be slower: it can break a fusion)."""
    compute = {
        (r.model, r.provider, r.precision, r.batch): r.stats.p50_ms
        for r in record.latency
        if r.variant == "as-trained" and r.mode == "compute"
    }
    places = list(dict.fromkeys((p, q, b) for (_, p, q, b) in compute))
    rows = []
    for name in dict.fromkeys(m for (m, *_) in compute if "+" in m):
        original, rewrite = name.split("+", 1)
        row = {"activation": original}
        for provider, precision, batch in places:
            new, old = (
                compute.get((name, provider, precision, batch)),
                compute.get((original, provider, precision, batch)),
            )
            if new is None or old is None:
                continue
            choice = rewrite if new < old else f"keep {original}"
            row[f"{provider} {precision}, batch {batch}"] = f"{new / old:.2f}× → {choice}"
        rows.append(row)
    return rows


def deployment_cell_rows(record: ProfileRecord) -> list[dict[str, str]]:
    compiles = any(c.compile_seconds is not None for c in record.deployments)
    return [
        {
            "activation": c.model,
            "provider": c.provider,
            "precision": c.precision,
            "runs as": c.runs_as,
            "threads": str(c.threads),
            "accuracy": f"{pct(c.accuracy)} of {c.test_images:,} ({c.dataset})",
            "agrees with fp32": pct(c.argmax_agreement, 1),
            "max |Δlogit|": f"{c.max_abs_logit_diff:.2g}",
            "model file": f"{size(c.size_bytes)} ({c.file})",
            "memory added": size(c.rss_added_bytes),
            **({"compile": "—" if c.compile_seconds is None else f"{c.compile_seconds:.1f} s"} if compiles else {}),
        }
        for c in record.deployments
    ]


def deployment_note(record: ProfileRecord) -> str:
    batch = min(record.settings.batch_sizes)
    parts = [
        "Each cell: p50 latency · ratio to the baseline on the same runtime and precision [95% CI] · accuracy on "
        "the whole test split. Memory added: resident memory a loaded model adds once run at batch "
        f"{batch}. Each runtime's models are timed in rounds of their own."
    ]
    if any(c.compile_seconds is not None for c in record.deployments):
        parts.append(
            f"Compile: seconds spent compiling (Inductor) or lowering (ExecuTorch) before the first run at batch "
            f"{batch}, never timed as latency; each batch size compiles once more (static shapes)."
        )
    if record.calibration:
        c = record.calibration
        parts.append(
            f"int8: static QDQ quantization (ONNX Runtime's quantizer), calibrated on {c.images} MNIST {c.dataset} "
            f"training images ({c.split}; seed {c.seed}), never test images."
        )
    return " ".join(parts)


def microbench_rows(record: MicrobenchRecord) -> list[dict[str, str]]:
    return [
        {
            "provider": r.provider,
            "size": size(4 * r.elements),
            "op": r.op,
            "ONNX": "+".join(r.onnx_ops),
            "p50 ms": f"{r.p50_ms:,.3f}",
            "GB/s": f"{r.gbps:,.1f}",
            "of copy": f"{100 * r.fraction_of_copy:.0f}%",
        }
        for r in record.results
    ]
