"""From the command line's words to the configs the API takes: parsing only (nothing connects or loads here;
each config checks its own values when built)."""

from __future__ import annotations

from actprof.errors import UsageError
from actprof.launchers.config import EXECUTORS, Placement, RemoteProfile
from actprof.settings.networks import NetworkSpec
from actprof.settings.parse import parse_choices, parse_one, parse_positive_floats, require
from actprof.settings.profile import INFERENCE_PRECISIONS, ProfileSettings, parse_batch_sizes, parse_opt_levels
from actprof.training.config import Recipe, Sweep, parse_seeds


def providers(spec: str) -> tuple[list[str], bool]:
    """The providers named, and whether those that do not bind are skipped (``all``) rather than refused."""
    from actprof.runtimes import parse_providers

    return parse_providers(spec), spec.strip().lower() == "all"


def profile_settings(
    *,
    provider: str,
    batch_sizes: str,
    threads: int,
    min_time: float,
    min_runs: int,
    precision: str,
    opt_level: str = "all",
    ablation: bool = True,
    cuda_graph: bool = False,
    calibration_images: int = ProfileSettings().calibration_images,
    input: str = ProfileSettings().input,
) -> ProfileSettings:
    return ProfileSettings(
        providers=providers(provider)[0],
        batch_sizes=parse_batch_sizes(batch_sizes),
        threads=threads,
        opt_levels=parse_opt_levels(opt_level),
        min_time=min_time,
        min_runs=min_runs,
        ablation=ablation,
        cuda_graph=cuda_graph,
        input=input,
        precisions=parse_choices(precision, INFERENCE_PRECISIONS, "--precision"),
        calibration_images=calibration_images,
    )


def recipe(
    model: str,
    dropout: float | None,
    alpha_dropout: float | None,
    alpha=None,
    init=None,
    *,
    batch_norm: bool = False,
    standardize: bool = False,
) -> Recipe:
    if "," in model:
        raise UsageError("--model takes one network per run; give each network its own --models directory")
    return Recipe(
        architecture=NetworkSpec.parse(model).text,
        dropout=dropout,
        alpha_dropout=alpha_dropout,
        param=alpha,
        init=init,
        batch_norm=batch_norm,
        standardize=standardize,
    )


def sweep(lr: str, seed: str, seeds: int | None, *, force: bool) -> Sweep:
    return Sweep(lrs=tuple(parse_positive_floats(lr, "--lr")), seeds=tuple(parse_seeds(seed, seeds)), force=force)


def placement(executor: str, address: str | None, cpus_per_task: int, device: str, *, profile_on: str | None = None):
    """None for the local executor; where Ray tasks go otherwise. ``--ray-address`` also serves
    ``--profile-on`` with local training."""
    kind = parse_one(executor, EXECUTORS, "--executor")
    require(cpus_per_task >= 0, f"--cpus-per-task must be 0 (a whole node) or more, got {cpus_per_task}")
    if kind == "local":
        if (address and not profile_on) or cpus_per_task:
            raise UsageError("--ray-address and --cpus-per-task apply to --executor ray (or --profile-on)")
        return None
    return Placement(address=address, cpus_per_task=cpus_per_task, gpu=device == "cuda")


def remote_profile(resource: str | None, address: str | None) -> RemoteProfile | None:
    """Where the profile stage runs: here (None), or on the Ray node offering ``resource``."""
    if resource is None:
        if address:
            raise UsageError("--ray-address applies to --profile-on here; add --profile-on RESOURCE")
        return None
    return RemoteProfile(resource=resource.strip(), address=address)
