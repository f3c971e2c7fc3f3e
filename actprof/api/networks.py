"""The public API's functions over any ONNX network: ``swap`` (what each activation costs inside it, and how far
its outputs move), ``swap_listing`` and ``swap_sites`` (its sites and inputs, listed) and ``optimize`` (the exact
pool-first rewrite)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from actprof.measure.config import SWAP_PROFILE, SwapOptions
from actprof.pipeline.optimize import Optimized
from actprof.pipeline.progress import QUIET, Reporter
from actprof.schema.swap import InputSpec, SiteRecord, SwapRecord
from actprof.settings.profile import ProfileSettings


def swap(
    model: Path,
    *,
    options: SwapOptions = SwapOptions(),
    settings: ProfileSettings = SWAP_PROFILE,
    out: Path = Path("reports/swap"),
    skip_unbound: bool = False,
    reporter: Reporter = QUIET,
) -> tuple[SwapRecord, list[Path]]:
    """Price every activation inside any ONNX ``model``: its sites swapped for each candidate (not retrained:
    only the cost is measured), profiled side by side; writes ``swap.{json,md,html,csv}`` and the variants to
    ``out``. Returns the record and the files written."""
    from actprof.measure.providers import resolve
    from actprof.measure.swap import check_swap, run_swap
    from actprof.report.files import write_swap_reports

    checked = check_swap(model, options, settings.batch_sizes, settings.providers)  # the user's mistakes first
    settings = resolve(settings, skip_unbound=skip_unbound, say=reporter.say)
    with reporter.working("swap") as status:
        record = run_swap(model, options, settings, out=out, say=status, checked=checked)
    return record, write_swap_reports(out, record)


class SwapListing(NamedTuple):
    """What ``swap --list`` shows: the sites, the indices ``swap`` would replace, and what each input gets."""

    sites: list[SiteRecord]
    replaced: list[int]
    inputs: list[InputSpec]


def swap_listing(
    model: Path, *, options: SwapOptions = SwapOptions(), batch: int = 1, providers: Sequence[str] = ()
) -> SwapListing:
    """Every activation site of ``model`` (kind, role, nodes, elements at ``batch``), the indices ``swap``
    would replace with ``options``, and each input's shape at ``batch`` and the source of its values;
    ``providers`` that cannot feed the inputs are refused as ``swap`` would. Nothing is profiled or written."""
    from actprof.measure.swap import list_sites

    return SwapListing(*list_sites(Path(model), options, batch, providers))


def swap_sites(
    model: Path, *, options: SwapOptions = SwapOptions(), batch: int = 1
) -> tuple[list[SiteRecord], list[int]]:
    """Every activation site of ``model`` (kind, role, nodes, elements at ``batch``) and the indices ``swap``
    would replace with ``options``; nothing is profiled or written (``swap_listing`` adds the inputs)."""
    listing = swap_listing(model, options=options, batch=batch)
    return listing.sites, listing.replaced


def optimize(model: Path, out: Path | None = None) -> Optimized:
    """Move every monotonic activation after its MaxPool in ``model`` (exact: parity ≤ 1e-6 on real images);
    writes ``<model>+pool-first.onnx`` (and its record, where the model has one) or ``out``."""
    from actprof.pipeline.optimize import optimize as rewrite

    return rewrite(Path(model), out)
