"""Does the faster training step still train the same network to the same place? Side by side with an
earlier revision.

Trains each activation with each seed on full MNIST (1 epoch, the default recipe), once with the
working tree's code and once with ``--reference``'s, interleaved seed by seed. It then prints test
accuracy, the mean loss of the last 50 steps, and img/s. The dropout masks come from another random
stream, so runs with the same seed are not step-for-step equal. "The same function" means the
distributions agree: the two codes' mean test accuracies differ by less than their seed spread.

    python benchmarks/same_function.py --data-dir ../shared/data/mnist --reference 44c9067 [--acts relu,elu] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from reference import checkout, train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--reference", required=True, help="git revision to compare with")
    parser.add_argument("--acts", default="relu,elu")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--model", default="seed", choices=["seed", "deep"])
    args = parser.parse_args()
    old_tree = checkout(args.reference)
    print(
        f"{'activation':>10} {'code':>10} {'test acc per seed':>26} {'mean':>7} {'spread':>7} "
        f"{'last-50 loss':>12} {'img/s':>7}"
    )
    for act in args.acts.split(","):
        results: dict[str, list[dict]] = {"reference": [], "this tree": []}
        for seed in range(args.seeds):  # interleaved: drift hits both alike
            for label, tree in (("reference", old_tree), ("this tree", None)):
                results[label].append(train_run(args.data_dir, act, architecture=args.model, seed=seed, tree=tree))
        means, spreads = [], []
        for label, runs in results.items():
            accs = [r["test_accuracy"] * 100 for r in runs]
            means.append(statistics.mean(accs))
            spreads.append(max(accs) - min(accs))
            print(
                f"{act:>10} {label:>10} {' '.join(f'{a:6.2f}' for a in accs):>26} {means[-1]:7.2f} "
                f"{spreads[-1]:7.2f} {statistics.mean(r['tail_loss'] for r in runs):12.4f} "
                f"{statistics.median(r['images_per_second'] for r in runs):7,.0f}"
            )
        spread, difference = max(spreads), means[1] - means[0]
        if args.seeds < 2:
            print(f"{'':>10} difference {difference:+.2f} points (one seed each: no seed spread to judge it by)")
            continue
        verdict = "within" if abs(difference) <= spread else "outside"
        print(
            f"{'':>10} mean difference {difference:+.2f} points: {verdict} the larger seed spread "
            f"({spread:.2f}); indicative only, it cannot see a bias smaller than the seed noise"
        )


if __name__ == "__main__":
    main()
