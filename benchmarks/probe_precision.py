"""How should the validation probe spend its images? Time to accuracy's noise, by points × images.

Each training evaluates, at every point of its curve, a pool of 16,000 images (the validation split
and, for this experiment only, the test split, shuffled together once) and keeps every image's verdict.
The curve that a probe of n images at p points would have drawn is then read off disjoint n-image parts
of the pool at a subset of the points, and time to accuracy is interpolated on it as
`records.time_to` does. The spread over the parts is that probe design's own noise; the spread over
seeds (on the whole pool, every point) is the training's. A design's cost is points × images, the
forward passes each training pays for its curve.

    python benchmarks/probe_precision.py --data-dir ../shared/data/mnist [--acts relu,gelu,leaky_relu] [--seeds 5]
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

import torch

from actprof import activations
from actprof.data import mnist as data
from actprof.schema.training import time_to
from actprof.settings.training import TrainConfig
from actprof.training import loop as train
from actprof.training.model import config_for

POOL = 16_000  # 6,000 validation + 10,000 test images
# (points per epoch, images per point): the old default (24 x 2,000) first, then designs at 1/2 to 1x its cost
DESIGNS = ((24, 2000), (24, 1000), (12, 2000), (8, 3000), (12, 3000), (8, 4000), (12, 4000))


def record(mnist: data.MNIST, act: str, seed: int) -> tuple[list, torch.Tensor]:
    """One training's curve points (24 per epoch), and each point's verdicts on the shuffled pool."""
    dtype = torch.bfloat16 if train.resolve_precision("auto") == "bf16" else torch.float32
    _, _, x_val, y_val, x_test, y_test = train.staged(mnist, 0.1, torch.device("cpu"), dtype)
    order = torch.randperm(POOL, generator=torch.Generator().manual_seed(99))
    pool_x, pool_y = torch.cat([x_val, x_test])[order], torch.cat([y_val, y_test])[order]
    verdicts: list[torch.Tensor] = []
    original, per_epoch = train.evaluate, train.POINTS_PER_EPOCH

    def recording(model, x, y, chunk=1000):
        if x.data_ptr() == x_val.data_ptr():  # the probe (the test split's own evaluation is left alone)
            with torch.inference_mode():
                model.eval()
                verdicts.append(torch.cat([model(c).argmax(1) for c in pool_x.split(chunk)]) == pool_y)
        return original(model, x, y, chunk)

    train.evaluate, train.POINTS_PER_EPOCH = recording, 24  # every design's points are among these 24
    try:
        model = config_for(activations.get(act))
        _, result = train.train(model, TrainConfig(seed=seed), mnist)
    finally:
        train.evaluate, train.POINTS_PER_EPOCH = original, per_epoch
    return result.validation, torch.stack(verdicts)


def seconds_to(points: list, correct: torch.Tensor, target: float, keep: list[int]) -> float | None:
    accuracy = correct.float().mean(1).tolist()
    return time_to([replace(points[i], val_accuracy=accuracy[i]) for i in keep], target).seconds


def kept_points(points: list, per_epoch: int) -> list[int]:
    """Indices of the points a ``per_epoch``-point schedule records (for 24, 12 and 8: among the 24)."""
    wanted = train.validation_steps(points[-1].step, 0, 1, per_epoch)
    return [i for i, p in enumerate(points) if p.step == 0 or p.step in wanted]


def pooled_sd(groups: list[list[float]]) -> float:
    """The within-group standard deviation, pooled over groups (each group one training)."""
    groups = [g for g in groups if len(g) > 1]
    squares = sum(sum((v - statistics.mean(g)) ** 2 for v in g) for g in groups)
    freedom = sum(len(g) - 1 for g in groups)
    return (squares / freedom) ** 0.5 if freedom else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--acts", default="relu,gelu,leaky_relu")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--targets", default="0.9,0.95,0.96,0.97")
    parser.add_argument("--keep", type=Path, help="save the verdicts here, or read them if it exists")
    args = parser.parse_args()
    acts = args.acts.split(",")
    if args.keep and args.keep.exists():
        recorded = torch.load(args.keep, weights_only=False)
    else:
        mnist = data.load_mnist(data_dir=args.data_dir, log=lambda m: None)
        recorded = {}
        for seed in range(args.seeds):
            for act in acts:
                recorded[act, seed] = record(mnist, act, seed)
                print(f"{act} seed {seed}: final accuracy on the pool {recorded[act, seed][1][-1].float().mean():.4f}")
        if args.keep:
            torch.save(recorded, args.keep)
    for target in map(float, args.targets.split(",")):
        report(recorded, acts, target)


def report(recorded: dict, acts: list[str], target: float) -> None:
    print(f"\ntarget {target:.0%}: SD of seconds to the target, per training (the probe's: over disjoint parts)")
    print(f"{'':>12} {'seeds':>6} " + " ".join(f"{f'{p}x{n}':>8}" for p, n in DESIGNS))
    print(f"{'cost':>12} {'':>6} " + " ".join(f"{p * n / (24 * 2000):>8.2f}" for p, n in DESIGNS))
    for act in acts:
        trainings = [recorded[a, s] for a, s in recorded if a == act]
        every = list(range(len(trainings[0][0])))
        whole = [t for t in (seconds_to(p, v, target, every) for p, v in trainings) if t is not None]
        cells: list[float] = []
        for per_epoch, n in DESIGNS:
            groups = []
            for points, verdicts in trainings:
                keep = kept_points(points, per_epoch)
                parts = (seconds_to(points, verdicts[:, i : i + n], target, keep) for i in range(0, POOL - n + 1, n))
                groups.append([t for t in parts if t is not None])
            cells.append(pooled_sd(groups))
        if len(whole) < 2:  # parts that cross by luck would give a spread of nothing
            print(f"{act:>12} reached by {len(whole)} of {len(trainings)} trainings on the whole pool")
            continue
        print(f"{act:>12} {statistics.stdev(whole):6.2f} " + " ".join(f"{sd:8.2f}" for sd in cells))


if __name__ == "__main__":
    main()
