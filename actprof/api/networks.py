"""The public API's functions over any ONNX network: ``swap`` (what each activation costs inside it, and how far
its outputs move), ``swap_sites`` (its sites, listed) and ``optimize`` (the exact pool-first rewrite)."""

from __future__ import annotations

from pathlib import Path

from actprof.measure.config import SWAP_PROFILE, SwapOptions
from actprof.pipeline.optimize import Optimized
from actprof.pipeline.progress import QUIET, Reporter
from actprof.schema.swap import SiteRecord, SwapRecord
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

    checked = check_swap(model, options, settings.batch_sizes)  # the user's mistakes first, before any runtime
    settings = resolve(settings, skip_unbound=skip_unbound, say=reporter.say)
    with reporter.working("swap") as status:
        record = run_swap(model, options, settings, out=out, say=status, checked=checked)
    return record, write_swap_reports(out, record)


def swap_sites(
    model: Path, *, options: SwapOptions = SwapOptions(), batch: int = 1
) -> tuple[list[SiteRecord], list[int]]:
    """Every activation site of ``model`` (kind, role, nodes, elements at ``batch``) and the indices ``swap``
    would replace with ``options``; nothing is profiled or written."""
    from actprof.measure.swap import list_sites

    return list_sites(Path(model), options, batch)


def optimize(model: Path, out: Path | None = None) -> Optimized:
    """Move every monotonic activation after its MaxPool in ``model`` (exact: parity ≤ 1e-6 on real images);
    writes ``<model>+pool-first.onnx`` (and its record, where the model has one) or ``out``."""
    from actprof.pipeline.optimize import optimize as rewrite

    return rewrite(Path(model), out)
