"""The rows of every table a person reads, as plain strings: one source for the terminal, Markdown and HTML.

``report`` renders these rows; nothing here knows how they will be drawn.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actprof.records import (
        ActivationSummary,
        FusionCensus,
        Interval,
        MicrobenchRecord,
        ProfileRecord,
        ReportRecord,
        SwapRecord,
        Verdict,
    )


LAUNCH_CLOCK_NOTE = (
    "CUDA rows time the host-side launch of each node, not the GPU kernel: the CUDA provider runs "
    "asynchronously and ORT's pip build has no CUPTI. They rank dispatch overhead; the ablation's "
    "identity swap gives an activation's GPU cost."
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
                "precision": r.precision,
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
            ratio = _interval(timed.vs_baseline, ".2f", "×") if model != record.baseline else "baseline"
            row[f"{provider} {precision}"] = f"{1000 * timed.stats.p50_ms:,.0f} µs · {ratio} · {_pct(cell.accuracy)}"
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
    return [
        {
            "activation": c.model,
            "provider": c.provider,
            "precision": c.precision,
            "runs as": c.runs_as,
            "threads": str(c.threads),
            "accuracy": f"{_pct(c.accuracy)} of {c.test_images:,} ({c.dataset})",
            "agrees with fp32": _pct(c.argmax_agreement, 1),
            "max |Δlogit|": f"{c.max_abs_logit_diff:.2g}",
            "model file": f"{_bytes(c.size_bytes)} ({c.file})",
            "memory added": _bytes(c.rss_added_bytes),
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
            "size": _bytes(4 * r.elements),
            "op": r.op,
            "ONNX": "+".join(r.onnx_ops),
            "p50 ms": f"{r.p50_ms:,.3f}",
            "GB/s": f"{r.gbps:,.1f}",
            "of copy": f"{100 * r.fraction_of_copy:.0f}%",
        }
        for r in record.results
    ]


def decision_rows(report: ReportRecord) -> list[dict[str, str]]:
    """The answer, one row per activation: convergence against the baseline, the test-time cost on every
    deployment profiled (ratio at batch 1 [95% CI]), the break-even and one word, best calls first.

    The word and the break-even are for the first deployment target profiled (``primary_target``); an exact
    rewrite shares its original's training and differs only in inference."""
    from actprof.verdict import CALLS

    targets = list(dict.fromkeys((v.provider, v.precision) for v in report.verdicts))
    primary = {v.activation: v for v in report.verdicts if (v.provider, v.precision) == targets[0]} if targets else {}
    by_target = {(v.activation, v.provider, v.precision): v for v in report.verdicts}
    level = _level(report)
    rows = []
    for s in report.activations:
        v = primary.get(s.name)
        if v is None:
            continue
        original = s.name.split("+")[0]
        row = {"activation": s.name}
        if report.lr_study is not None:
            row["best lr"] = "—" if s.lr is None else f"{s.lr:g}"
        row |= {
            f"s to {level} (vs {report.baseline})": _race(v) if s.rewrite is None else f"as {original}",
            "s saved [95% CI]": _saved(v) if s.rewrite is None else "—",
            "evidence": _evidence(v) if s.rewrite is None else "—",
        }
        for provider, precision in targets:
            other = by_target.get((s.name, provider, precision))
            ratio = _ratio_at_batch1(s, provider, precision)
            row[f"× {report.baseline}, {provider} {precision}"] = ratio if other else "—"
        row["break-even (inferences)"] = _break_even_words(v)
        row["verdict"] = v.call or "—"
        rows.append(row)
    order = {word: i for i, word in enumerate(CALLS)}
    return sorted(rows, key=lambda r: order.get(r["verdict"], len(order)))


def primary_target(report: ReportRecord) -> str:
    """The deployment target the decision table's words are for, e.g. "cpu fp32"."""
    first = next(iter(report.verdicts), None)
    return f"{first.provider} {first.precision}" if first else "none"


def _race(v: Verdict) -> str:
    mine = "not reached" if v.train_seconds is None else f"{v.train_seconds:.1f}"
    theirs = "not reached" if v.baseline_train_seconds is None else f"{v.baseline_train_seconds:.1f}"
    return f"{mine} vs {theirs}"


def _saved(v: Verdict) -> str:
    c = v.training
    if c is not None and c.n >= 2 and not math.isnan(c.low):
        return f"{-c.mean_difference:+.1f} [{-c.high:+.1f}, {-c.low:+.1f}]"
    if v.train_seconds_saved is None:
        return "—"
    return f"{v.train_seconds_saved:+.1f} (1 seed)"


def _evidence(v: Verdict) -> str:
    c = v.training
    if c is not None and c.n >= 2:
        return f"p = {c.p_value:.3f}, {c.reached}" if not math.isnan(c.p_value) else c.reached
    if c is not None:  # several seeds, too few of them reached the target to pair
        return f"reached {c.reached}"
    return "one seed" if v.train_seconds is not None or v.baseline_train_seconds is not None else "—"


def _ratio_at_batch1(s: ActivationSummary, provider: str, precision: str) -> str:
    from actprof.verdict import latency_at

    brief = latency_at(s, provider, 1, precision)
    return _interval(brief.vs_baseline, ".2f", "×") if brief else "—"


def _break_even_words(v: Verdict) -> str:
    if v.call == "wins":
        return "pays at any volume"
    if v.call in ("loses", "tie", "incomplete", ""):
        return "never pays" if v.call == "loses" else "—"
    if v.break_even_batch1 is not None:
        within = (
            " (gain within noise)"
            if v.training is not None and v.training.n >= 2 and not v.training.significant
            else ""
        )
        return f"first {v.break_even_batch1:,.0f}{within}"
    saved, lost = v.train_seconds_saved, v.ms_lost_per_image_batch1
    if saved is not None and saved < 0 and lost is not None and lost.value < 0:  # slower to train, cheaper to run
        return f"after {saved / (lost.value / 1e3):,.0f}"
    return "—"


def trained(report: ReportRecord) -> list[ActivationSummary]:
    """The activations as trained: exact rewrites share their original's training, so they are left out."""
    return [s for s in report.activations if s.rewrite is None]


def _level(report: ReportRecord) -> str:
    return f"{100 * report.target_accuracy:.0f}%" if report.target_accuracy else "target"


# --- bring your own model ----------------------------------------------------------------------------


def swap_site_rows(record: SwapRecord) -> list[dict[str, str]]:
    """The sites found, grouped by kind: how many, how many replaced, and how many elements they touch."""
    chosen = set(record.replaced)
    groups: dict[str, list[int]] = {}
    for i, site in enumerate(record.sites):
        groups.setdefault(site.kind, []).append(i)
    rows = []
    for kind, indices in groups.items():
        sizes = [record.sites[i].elements for i in indices]
        known = [s for s in sizes if s is not None]
        rows.append(
            {
                "activation site": kind,
                "count": str(len(indices)),
                "replaced": str(sum(i in chosen for i in indices)),
                "elements per inference": (f"{sum(known):,}" + ("" if len(known) == len(sizes) else " (some unknown)"))
                if known
                else "unknown",
                "largest site": f"{max(known):,}" if known else "—",
            }
        )
    return rows


def swap_rows(record: SwapRecord) -> list[dict[str, str]]:
    """The activation tax: per runtime, precision and batch, each candidate against the original."""
    fused = {(f.model, f.provider, f.precision): f for f in record.fusion}
    shares = {(p.model, p.provider, p.precision, p.batch): p.activation_share for p in record.op_profiles}
    rows = []
    for r in record.latency:
        census = fused.get((r.model, r.provider, r.precision))
        share = shares.get((r.model, r.provider, r.precision, r.batch))
        rows.append(
            {
                "provider": r.provider,
                "precision": r.precision,
                "batch": str(r.batch),
                "variant": r.model,
                "p50 ms": f"{r.stats.p50_ms:,.3f}",
                "× original [95% CI]": "—" if r.model == "original" else _interval(r.vs_baseline, ".2f", "×"),
                "cost over original ms [CI]": "—" if r.model == "original" else _interval(r.vs_baseline_ms, ".3f"),
                "activation ops share": "—" if share is None else f"{100 * share:.0f}%",
                "fused": _fusion_words(census),
            }
        )
    return rows


def _fusion_words(census: FusionCensus | None) -> str:
    if census is None:
        return "—"
    fused = sum(census.fused.values())
    left = sum(census.activation_nodes_left.values())
    return f"{fused} fused, {left} standalone"
