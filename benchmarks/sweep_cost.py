"""What one training costs inside a sweep against on its own: wall time per training, as a user runs it.

A single run is one ``actprof train-export --act A`` in a fresh process: it pays Python's and torch's
imports, loading MNIST, staging it, the first ONNX export, and the parity session. The sweep is one
``actprof train-export --act relu,elu --lr 3e-4,1e-3,3e-3 --seeds 3`` (18 trainings). It pays those
once: the staged data and, per (activation, network), the exported graph are reused across seeds and
learning rates. Both on full MNIST, 1 epoch each, into fresh directories. With ``--reference REV`` the
same commands also run with that revision's code, interleaved command by command, for the before and
after.

    python benchmarks/sweep_cost.py --data-dir ../shared/data/mnist [--reference 44c9067]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from reference import checkout, cli

LRS = "3e-4,1e-3,3e-3"
SEEDS = 3


def timed(args: list[str], tree: Path | None) -> float:
    started = time.perf_counter()
    cli(args, tree)
    return time.perf_counter() - started


def training_seconds(models: Path) -> float:
    """Training proper (validation excluded), summed over the runs the command wrote."""
    return sum(json.loads(p.read_text())["train"]["train_seconds"] for p in (models / "runs").glob("*.json"))


def measure(trees: dict[str, Path | None], data_dir: Path, acts: list[str]) -> dict[str, dict[str, float]]:
    """Every command once per code, the codes interleaved command by command (drift hits both alike)."""
    commands = {f"single {act}": ["train-export", "--act", act] for act in acts}
    commands["sweep"] = ["train-export", "--act", ",".join(acts), "--lr", LRS, "--seeds", str(SEEDS)]
    work = Path(tempfile.mkdtemp(prefix="actprof-sweep-"))
    figures: dict[str, dict[str, float]] = {label: {} for label in trees}
    try:
        for name, args in commands.items():
            for label, tree in trees.items():
                out = work / f"{label}-{name}".replace(" ", "-")
                figures[label][name] = timed([*args, "--data-dir", str(data_dir), "--out", str(out)], tree)
                figures[label][f"{name} training"] = training_seconds(out)
        return figures
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(label: str, figures: dict[str, float], acts: list[str]) -> None:
    trainings = len(acts) * 3 * SEEDS
    single = sum(figures[f"single {a}"] for a in acts) / len(acts)
    single_training = sum(figures[f"single {a} training"] for a in acts) / len(acts)
    per = figures["sweep"] / trainings
    per_training = figures["sweep training"] / trainings
    print(
        f"{label:>10}: single run {single:5.1f} s wall ({single_training:4.1f} s of it training); "
        f"in the sweep {per:5.1f} s wall per training ({per_training:4.1f} s training), "
        f"{figures['sweep']:.0f} s for {trainings}; overhead per training {single - single_training:.1f} s → "
        f"{per - per_training:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--reference", help="git revision to run side by side")
    parser.add_argument("--acts", default="relu,elu")
    args = parser.parse_args()
    acts = args.acts.split(",")
    data_dir = args.data_dir.resolve()
    trees = {"this tree": None}
    if args.reference:
        trees = {args.reference: checkout(args.reference), **trees}
    results = measure(trees, data_dir, acts)
    print(f"{len(acts)} activations x 3 learning rates x {SEEDS} seeds, full MNIST, 1 epoch")
    for label, figures in results.items():
        report(label, figures, acts)


if __name__ == "__main__":
    main()
