"""Does the harness measure what it should on this machine? The timed checks that are not unit tests.

The unit tests check the harness's logic on a fake clock (tests/test_latency.py); this script times real work
and prints each figure beside its goal:

- a warm-up's estimate of a 2 ms sleep (goal: 2-3 ms; a busy machine adds the scheduler's wake-up);
- 1 ms and 3 ms sleeps interleaved: rounds taken for 8 asked (goal: at most 10), the ratio (goal: 2-3.3, sleep
  overheads pull it below 3) and the difference (goal: ~2 ms);
- a 3x CPU workload (numpy sorts of 200k and 600k numbers): the ratio (goal: above 2);
- the caps: ``interleave`` with max_seconds 0.2 and ``warm_up`` with max_seconds 0.2 (goals: under 6 s, 1.5 s);
- ELU against ReLU on ONNX Runtime's CPU provider at batch 1 (goal: above 1.1: ReLU is fused into the
  convolutions, ELU is not) and ELU's ablation cost (goal: above 0).

    python benchmarks/harness_checks.py [--models models]

Without relu and elu models in --models it trains them on the bundled sample into .bench/models. Exit 1 when a
figure misses its goal.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from actprof import api
from actprof.measure import harness
from actprof.schema import environment

Check = tuple[str, float, str, bool]  # what, the figure, its goal, met


def harness_checks() -> list[Check]:
    checks = []
    estimate = harness.warm_up(lambda: time.sleep(0.002), min_runs=5, min_seconds=0.05, max_seconds=0.5) / 1e6
    checks.append(("warm-up estimate of a 2 ms sleep (ms)", estimate, "2-3", 2 <= estimate <= 3))
    sleeps = {"fast": lambda: time.sleep(0.001), "slow": lambda: time.sleep(0.003)}
    result = harness.interleave(sleeps, min_seconds=0.1, min_runs=10, min_rounds=8)
    rounds = len(result.rounds["fast"])
    checks.append(("rounds for 8 asked (1 and 3 ms sleeps)", rounds, "8-10", 8 <= rounds <= 10))
    ratio = harness.ratio(result, "slow", "fast").value
    checks.append(("3 ms / 1 ms sleep, median per-round ratio", ratio, "2-3.3", 2 <= ratio <= 3.3))
    difference = harness.difference_ms(result, "slow", "fast").value
    checks.append(("3 ms - 1 ms sleep, median difference (ms)", difference, "1.5-2.5", 1.5 <= difference <= 2.5))
    small, large = np.random.default_rng(0).random(200_000), np.random.default_rng(1).random(600_000)
    result = harness.interleave({"1x": lambda: np.sort(small), "3x": lambda: np.sort(large)}, min_seconds=0.3)
    ratio = harness.ratio(result, "3x", "1x").value
    checks.append(("3x CPU workload, median per-round ratio", ratio, "> 2", ratio > 2))
    started = time.perf_counter()
    harness.interleave({"a": lambda: None, "b": lambda: None}, min_seconds=0.01, min_runs=10**12, max_seconds=0.2)
    wall = time.perf_counter() - started
    checks.append(("interleave capped at 0.2 s: wall (s)", wall, "< 6", wall < 6))
    started = time.perf_counter()
    harness.warm_up(lambda: time.sleep(0.02), min_runs=3, min_seconds=0.01, max_seconds=0.2)
    wall = time.perf_counter() - started
    checks.append(("warm-up capped at 0.2 s: wall (s)", wall, "< 1.5", wall < 1.5))
    return checks


def profile_checks(models: Path) -> list[Check]:
    settings = api.ProfileSettings(batch_sizes=[1], min_time=0.5)
    with_sample = api.DataSource(dataset="sample")
    out = Path(".bench/harness-checks")
    record = api.profile(models, settings=settings, names=["relu", "elu"], data=with_sample, out=out)
    elu = next(r for r in record.latency if r.model == "elu" and r.variant == "as-trained")
    cost = next(a for a in record.ablation if a.model == "elu").activation_cost_ms
    return [
        ("ELU / ReLU on ORT CPU, batch 1", elu.vs_baseline.value, "> 1.1", elu.vs_baseline.value > 1.1),
        ("ELU's ablation cost (ms)", cost.value, "> 0", cost.value > 0),
    ]


def ensure_models(models: Path) -> Path:
    if (models / "relu.json").exists() and (models / "elu.json").exists():
        return models
    out = Path(".bench/models")
    trained = api.train_export(
        ["relu", "elu"], export=api.ExportOptions(out=out), data=api.DataSource(dataset="sample")
    )
    trained.check()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    args = parser.parse_args()
    models = ensure_models(args.models)
    print(f"CPU: {environment.cpu_model()}, {environment.physical_cores()} cores")
    checks = harness_checks() + profile_checks(models)
    for what, figure, goal, met in checks:
        print(f"{what:<46} {figure:>9.3f}   goal {goal:<8} {'ok' if met else 'MISSED'}")
    missed = [what for what, _, _, met in checks if not met]
    print(f"{len(checks) - len(missed)} of {len(checks)} goals met")
    raise SystemExit(1 if missed else 0)


if __name__ == "__main__":
    main()
