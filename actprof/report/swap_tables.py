"""The rows of ``swap``'s tables: the activation sites of a network, and what each candidate costs there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actprof.report.format import interval

if TYPE_CHECKING:
    from actprof.schema.profiling import FusionCensus
    from actprof.schema.swap import SwapRecord


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
                "× original [95% CI]": "—" if r.model == "original" else interval(r.vs_baseline, ".2f", "×"),
                "cost over original ms [CI]": "—" if r.model == "original" else interval(r.vs_baseline_ms, ".3f"),
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
