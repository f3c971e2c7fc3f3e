"""The rows of ``swap``'s tables: the activation sites of a network, and what each candidate costs there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actprof.report.format import interval

if TYPE_CHECKING:
    from actprof.schema.profiling import FusionCensus
    from actprof.schema.swap import OutputDistance, SiteRecord, SwapRecord


def swap_site_rows(record: SwapRecord) -> list[dict[str, str]]:
    """The sites found, grouped by kind and role: how many, how many replaced, and how many elements they
    touch; the site numbers ``--sites`` takes."""
    chosen = set(record.replaced)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, site in enumerate(record.sites):
        groups.setdefault((site.kind, site.role), []).append(i)
    rows = []
    for (kind, role), indices in groups.items():
        sizes = [record.sites[i].elements for i in indices]
        known = [s for s in sizes if s is not None]
        rows.append(
            {
                "activation site": kind,
                "role": role,
                "sites (--sites)": _numbers(indices),
                "count": str(len(indices)),
                "replaced": str(sum(i in chosen for i in indices)),
                "elements per inference": (f"{sum(known):,}" + ("" if len(known) == len(sizes) else " (some unknown)"))
                if known
                else "unknown",
                "largest site": f"{max(known):,}" if known else "—",
            }
        )
    return rows


def site_list_rows(sites: list[SiteRecord], replaced: list[int]) -> list[dict[str, str]]:
    """One row per site, numbered as ``--sites`` takes them."""
    chosen = set(replaced)
    return [
        {
            "#": str(i + 1),
            "activation site": site.kind,
            "role": site.role,
            "replaced": "yes" if i in chosen else "no",
            "elements": "unknown" if site.elements is None else f"{site.elements:,}",
            "nodes": site.nodes[0]
            if len(site.nodes) == 1
            else f"{site.nodes[0]} … {site.nodes[-1]} ({len(site.nodes)})",
        }
        for i, site in enumerate(sites)
    ]


def _numbers(indices: list[int]) -> str:
    """1-based site numbers with runs collapsed: 1–4, 7, 9–12."""
    runs: list[list[int]] = []
    for n in (i + 1 for i in indices):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def distance_rows(record: SwapRecord) -> list[dict[str, str]]:
    """How far each variant's output moves from the original's on the same inputs (not retrained)."""
    rows = []
    for v in record.variants:
        d = v.distance
        if d is None:
            continue
        rows.append(
            {
                "variant": v.name,
                "max |Δ|": f"{d.max_abs:.3g}",
                "mean |Δ|": f"{d.mean_abs:.3g}",
                "‖Δ‖ / ‖original‖": f"{d.relative:.3g}",
                "top class kept": "—" if d.argmax_agreement is None else _share(d.argmax_agreement),
                "inputs": str(d.samples),
            }
        )
    return rows


def swap_rows(record: SwapRecord) -> list[dict[str, str]]:
    """The activation tax: per runtime, precision and batch, each candidate against the original."""
    fused = {(f.model, f.provider, f.precision): f for f in record.fusion}
    shares = {(p.model, p.provider, p.precision, p.batch): p.activation_share for p in record.op_profiles}
    moved = {v.name: _moved(v.distance) for v in record.variants}
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
                "outputs moved on ORT CPU fp32 (max |Δ|, top class kept)": moved.get(r.model, "—"),
            }
        )
    return rows


def _moved(d: OutputDistance | None) -> str:
    if d is None:
        return "—"
    return f"{d.max_abs:.3g}" + ("" if d.argmax_agreement is None else f", {_share(d.argmax_agreement)}")


def _share(fraction: float) -> str:
    """100% only when every top class was kept: one flip in 512 reads 99.8%, not a rounded 100%."""
    return "100%" if fraction == 1.0 else f"{min(100 * fraction, 99.9):.1f}%"


def _fusion_words(census: FusionCensus | None) -> str:
    if census is None:
        return "—"
    fused = sum(census.fused.values())
    left = sum(census.activation_nodes_left.values())
    return f"{fused} fused, {left} standalone"
