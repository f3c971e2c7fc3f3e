"""Two runtimes' thread pools on a few cores: time them in rounds of their own, or mixed in the same rounds?

ONNX Runtime's intra-op workers spin after each run, waiting for the next; so do OpenVINO's. Interleaving
sessions of both runtimes in the same rounds lets one runtime's idle workers steal cores from the other's
run. This measures, side by side and alternately (``--repeats`` times), p50 latency of ReLU and ELU on both
runtimes (a) the way actprof times them — each runtime's models in interleaved rounds of their own — and
(b) with all four models mixed in the same rounds; it prints the medians and the inflation (b)/(a).

    python benchmarks/mixed_runtimes.py [--models models] [--batch 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from harness_overhead import ensure_models

from actprof import runtimes
from actprof.measure import harness
from actprof.measure.cells import images
from actprof.schema import environment, storage


def p50s(targets: dict[str, object], seconds: float) -> dict[str, float]:
    rounds = harness.interleave(targets, min_seconds=seconds, min_runs=30)
    return {k: harness.stats_from_ns(v, batch=1).p50_ms for k, v in rounds.samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()

    models = ensure_models(args.models)
    x = images(args.batch)
    targets: dict[str, dict[str, object]] = {}
    for provider in ("cpu", "openvino"):
        backend = runtimes.backend(provider)
        for path, record in storage.find_models(models, ["relu", "elu"]):
            loaded = backend.load(path.read_bytes(), opt_level=backend.opt_levels(["all"])[0])
            targets.setdefault(provider, {})[f"{provider} {record.name}"] = backend.compute_target(loaded, x).run
    own: dict[str, list[float]] = {}
    mixed: dict[str, list[float]] = {}
    for _ in range(args.repeats):  # alternate the two schemes so drift hits both alike
        for group in targets.values():
            for key, value in p50s(group, args.seconds).items():
                own.setdefault(key, []).append(value)
        everything = {k: v for group in targets.values() for k, v in group.items()}
        for key, value in p50s(everything, args.seconds).items():
            mixed.setdefault(key, []).append(value)
    print(f"CPU: {environment.cpu_model()}, {environment.physical_cores()} cores; batch {args.batch}")
    print(f"{'target':>14} {'own rounds µs':>14} {'mixed rounds µs':>16} {'mixed/own':>10}")
    for key in own:
        a, b = statistics.median(own[key]), statistics.median(mixed[key])
        print(f"{key:>14} {1000 * a:>14.1f} {1000 * b:>16.1f} {b / a:>9.2f}x")
    for provider in targets:
        for name, scheme in (("own", own), ("mixed", mixed)):
            ratio = statistics.median(scheme[f"{provider} elu"]) / statistics.median(scheme[f"{provider} relu"])
            print(f"{provider} ELU/ReLU, {name} rounds: {ratio:.2f}x")


if __name__ == "__main__":
    main()
