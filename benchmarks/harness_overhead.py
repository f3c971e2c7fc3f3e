"""Does actprof's harness measure what a bare runtime loop measures?

For each provider, model and batch size, one loaded model (an ORT session; an OpenVINO compiled model and
infer request; a rebuilt torch module, eager or compiled by Inductor; an ExecuTorch program) is timed
alternately by a bare loop (``perf_counter_ns`` around ``session.run``, ``request.infer``, ``module(x)`` in a
``torch.inference_mode()`` block per call, ``method.execute``) and by actprof's harness (its timing target, warm-up,
interleaved rounds), ``--repeats`` times each; it prints both medians of p50 and the median of the per-pair
ratios with its 95% CI (batch-1 latency of the torch runtimes wanders by ±10% between half-second windows on
two cores, so the pairs, not one long run each, carry the comparison). Goal: within ±3%.

    python benchmarks/harness_overhead.py [--models models] [--provider cpu,openvino,torch,inductor,executorch]

Without trained models in --models it trains relu and elu on the bundled sample into .bench/models.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from actprof import api, runtimes
from actprof.measure import harness
from actprof.measure.cells import images
from actprof.schema import environment, storage
from actprof.settings.profile import parse_batch_sizes


def bare_call(provider: str, backend, loaded, x: np.ndarray):
    """The plainest way to run the loaded model once, written against each runtime's own API."""
    if provider in ("torch", "inductor"):
        import torch

        xt = torch.from_numpy(x)
        module = loaded.module
        if provider == "inductor":
            with torch._inductor.config.patch({"freezing": True}), torch.inference_mode():
                module = torch.compile(loaded.module, dynamic=False, fullgraph=True)
                module(xt)  # compiles

        def call():  # inference mode per call, as a request handler enters it
            with torch.inference_mode():
                return module(xt)

        return call
    if provider == "executorch":
        import torch

        xt = torch.from_numpy(x)
        _, program = backend.lowered(loaded, xt)
        method = program.load_method("forward")
        call = lambda: method.execute([xt])  # noqa: E731
        call.program = program  # the program must outlive its method
        return call
    if provider == "openvino":
        import openvino

        request = loaded.create_infer_request()
        request.set_input_tensor(openvino.Tensor(x))
        return request.infer
    feed = {"input": x}
    return lambda: loaded.run(["logits"], feed)


def bare_p50_ms(call, seconds: float) -> float:
    for _ in range(20):
        call()
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e6


def harness_p50_ms(backend, loaded, x: np.ndarray, seconds: float) -> float:
    target = backend.compute_target(loaded, x)
    rounds = harness.interleave({"m": target.run}, min_seconds=seconds, min_runs=30)
    return harness.stats_from_ns(rounds.samples["m"], batch=len(x)).p50_ms


def ensure_models(models: Path) -> Path:
    if (models / "relu.json").exists() and (models / "elu.json").exists():
        return models
    out = Path(".bench/models")
    trained = api.train_export(
        ["relu", "elu"],
        train=api.TrainConfig(val_every=100),
        export=api.ExportOptions(out=out),
        data=api.DataSource(dataset="sample"),
    )
    trained.check()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--batch-sizes", default="1,64")
    parser.add_argument("--provider", default="cpu,openvino")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()

    models = ensure_models(args.models)
    print(f"CPU: {environment.cpu_model()}, {environment.physical_cores()} cores")
    print(
        f"{'provider':>10} {'model':>10} {'batch':>5} {'bare p50 ms':>12} {'actprof p50 ms':>15} "
        f"{'actprof/bare [95% CI] of pairs':>31}"
    )
    worst = 0.0
    for provider in runtimes.parse_providers(args.provider):
        backend = runtimes.backend(provider)
        for path, record in storage.find_models(models, ["relu", "elu"]):
            for batch in parse_batch_sizes(args.batch_sizes):
                x = images(batch)
                loaded = backend.load(path.read_bytes(), opt_level=backend.opt_levels(["all"])[0])
                call = bare_call(provider, backend, loaded, x)
                bare, ours = [], []
                for _ in range(args.repeats):  # alternate, so drift hits both alike
                    bare.append(bare_p50_ms(call, args.seconds))
                    ours.append(harness_p50_ms(backend, loaded, x, args.seconds))
                b, o = statistics.median(bare), statistics.median(ours)
                pairs = harness.median_interval([mine / theirs for mine, theirs in zip(ours, bare, strict=True)])
                worst = max(worst, abs(pairs.value - 1))
                interval = f"{pairs.value:.3f}x [{pairs.low:.3f}, {pairs.high:.3f}]"
                print(f"{provider:>10} {record.name:>10} {batch:>5} {b:>12.4f} {o:>15.4f} {interval:>31}")
    print(f"worst deviation: {100 * worst:.1f}% (goal: within 3%)")


if __name__ == "__main__":
    main()
