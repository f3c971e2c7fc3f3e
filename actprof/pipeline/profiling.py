"""The profile stage, here or on a Ray node: models found, derived models and ``profile.json`` written once
everything was measured; and the checks that refuse an impossible placement before anything slow starts."""

from __future__ import annotations

from pathlib import Path

from actprof.data.mnist import MNIST
from actprof.launchers.config import Placement, RemoteProfile
from actprof.pipeline.progress import QUIET, Reporter
from actprof.schema.profiling import ProfileRecord
from actprof.schema.storage import find_models, write_bytes_atomic, write_json
from actprof.settings.profile import ProfileSettings


def check_placement(placement: Placement | None) -> None:
    """Join the cluster and refuse a task no node can run (None: local training, nothing to check)."""
    if placement is None:
        return
    from actprof.launchers import ray

    ray.connect(placement.address)
    ray.check_feasible(ray.cpus_per_task(placement), gpu=placement.gpu)


def check_remote(remote: RemoteProfile | None) -> None:
    """Join the cluster and refuse a resource no node offers (None: profile here)."""
    if remote is None:
        return
    from actprof.launchers import ray

    ray.connect(remote.address)
    ray.profiling_node_cpus(remote.resource)


def profile_models(
    models: Path,
    names: list[str] | None,
    settings: ProfileSettings,
    *,
    baseline: str,
    out: Path,
    mnist: MNIST,
    remote: RemoteProfile | None = None,
    reporter: Reporter = QUIET,
) -> ProfileRecord:
    """Profile the models found in ``models`` (the named ones, or all) with ``settings`` as resolved here
    (``measure.providers.resolve``), and write ``out/profile.json``; the derived int8/fp16 models go to
    ``out/derived/`` so that the exact files measured can be deployed. ``remote``: measure on the Ray node
    offering that resource instead (the record then names that node's hardware)."""
    found = find_models(models, names)
    if remote is not None:
        from actprof.launchers import ray

        files = {p.name: p.read_bytes() for path, _ in found for p in (path, path.with_suffix(".json"))}
        with reporter.working(f"profiling on the Ray node offering {remote.resource!r}"):
            record, derived = ray.profile_on(remote, files, names, settings, baseline=baseline, mnist=mnist)
    else:
        from actprof.measure.profile import profile_models as measure

        with reporter.working("profiling") as status:
            record, derived = measure(found, settings, mnist, baseline=baseline, say=status)
    for file, model in derived.items():  # only once every cell was measured: nothing partial
        write_bytes_atomic(out / "derived" / file, model)
    write_json(out / "profile.json", record)
    return record
