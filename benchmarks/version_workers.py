"""Do runtime-version workers measure what a bare loop measures, and do two workers of one build agree?

1. Overhead: one model is timed alternately by a bare ONNX Runtime loop in this process (``perf_counter_ns``
   around ``session.run``, a session with its own pool as the workers use) and by a worker process of the same
   build through actprof's protocol (its warm-up, blocks timed inside the worker), ``--repeats`` times each;
   it prints both medians of p50 and their ratio. Goal: within ±3%, as for the in-process harness.
2. A/A control: ``--runtime-versions onnxruntime,onnxruntime`` (two workers of the build installed here) on
   the same models; every change should be 1.00× within its interval.

    python benchmarks/version_workers.py [--models models/versions] [--repeats 7]

Without trained models in --models it trains relu and elu on the bundled sample into .bench/models.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from actprof import api
from actprof.measure.cells import images
from actprof.measure.environments import environment_for
from actprof.measure.workers import Worker
from actprof.schema import environment, storage
from actprof.settings.versions import RuntimePin


def bare_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bare_p50(session, x: np.ndarray, runs: int) -> float:
    feed = {"input": x}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        session.run(["logits"], feed)
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e6


def overhead(models: Path, names: list[str], batches: list[int], repeats: int, threads: int) -> None:
    worker = Worker(environment_for(RuntimePin("onnxruntime")), provider="cpu", threads=threads)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'model':10} {'batch':>5} {'bare p50 ms':>12} {'worker p50 ms':>14} {'worker/bare':>12}")
        for name in names:
            for batch in batches:
                x = images(batch)
                np.save(f"{tmp}/x.npy", x)
                key = f"{name}-{batch}"
                worker.request("load", key=key, model=str(models / f"{name}.onnx"), opt_level="all",
                               x=f"{tmp}/x.npy", names=["input", "logits"])  # fmt: skip
                session = bare_session(models / f"{name}.onnx", threads)
                estimate = worker.request("warm", key=key, runs=None) / 1e9
                runs = max(30, int(0.3 / max(estimate, 1e-6)))
                bare_p50(session, x, runs)  # the bare loop's warm-up
                bare, remote = [], []
                for _ in range(repeats):
                    bare.append(bare_p50(session, x, runs))
                    remote.append(float(np.median(worker.request("time", key=key, count=runs))) / 1e6)
                b, r = statistics.median(bare), statistics.median(remote)
                print(f"{name:10} {batch:>5} {b:>12.4f} {r:>14.4f} {r / b:>11.3f}×")
                worker.request("unload")
    worker.close()


def aa_control(models: Path, names: list[str], batches: list[int]) -> None:
    settings = api.ProfileSettings(batch_sizes=batches)
    with tempfile.TemporaryDirectory() as out:
        done = api.profile_versions(models, "onnxruntime,onnxruntime", settings=settings, names=names, out=Path(out))
    print(f"\nA/A: two workers of the installed build ({done.record.seconds:.0f} s)")
    for change in done.record.changes:
        c = change.latency
        print(
            f"  {change.model:10} {change.kind:8} batch {change.batch:>3}: {c.value:.3f}× [{c.low:.3f}, {c.high:.3f}]"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models/versions"))
    parser.add_argument("--act", default="relu,elu")
    parser.add_argument("--batch-sizes", default="1,64")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=environment.physical_cores())
    args = parser.parse_args()
    names = args.act.split(",")
    batches = [int(b) for b in args.batch_sizes.split(",")]
    models = args.models
    if not all((models / f"{n}.onnx").exists() for n in names):
        models = Path(".bench/models")
        trained = api.train_export(names, export=api.ExportOptions(out=models), data=api.DataSource(dataset="sample"))
        trained.check()
    env = environment.capture()
    print(f"{env.cpu_model}; {args.threads} threads; models from {models}")
    storage.find_models(models, names)  # refuses a stale or foreign model directory in one line
    overhead(models, names, batches, args.repeats, args.threads)
    aa_control(models, names, batches)


if __name__ == "__main__":
    main()
