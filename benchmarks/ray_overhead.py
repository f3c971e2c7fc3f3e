"""What a Ray task costs on top of the same training run here: the local executor against a local Ray
cluster, interleaved, on the bundled sample.

Each round trains the same N jobs (relu at N seeds) once with ``--executor local`` and once as Ray tasks
that reserve the whole node (so they run one after another, as the local executor does). The difference
per task is Ray's overhead: submitting, shipping MNIST from the object store, starting or reusing a worker
(which imports torch), returning the ONNX bytes and the record. It prints medians, the overhead per task,
and the break-even task size: the training length at which the overhead is 5% (1%) of a task, and how
many nodes a sweep needs before Ray's parallelism pays for it at the sample's task size.

    python benchmarks/ray_overhead.py [--jobs 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import ray

    from actprof import activations
    from actprof.data import mnist as data
    from actprof.export.config import ExportOptions
    from actprof.launchers.config import Placement
    from actprof.pipeline.training import train_sweep
    from actprof.schema import environment
    from actprof.settings.training import TrainConfig
    from actprof.training.config import Sweep
    from actprof.training.model import config_for

    mnist = data.load_mnist(dataset="sample", log=lambda _m: None)
    relu = activations.get("relu")
    train = TrainConfig(epochs=1, batch_size=250)
    plan = Sweep(lrs=(1e-3,), seeds=tuple(range(args.jobs)), force=True)
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    startup = time.perf_counter() - started

    def sweep(placement) -> tuple[float, float]:
        """Wall seconds of the sweep, and the training seconds it recorded (sum over runs)."""
        with tempfile.TemporaryDirectory() as out:
            begin = time.perf_counter()
            trained = train_sweep(
                [(relu, config_for(relu))],
                train,
                mnist,
                ExportOptions(out=Path(out)),
                plan,
                baseline=None,
                placement=placement,
            )
            wall = time.perf_counter() - begin
        trained.check()
        return wall, sum(r.train_seconds for r in trained.records[0].runs)

    sweep(Placement())  # warm: the first Ray task starts a worker and imports torch
    local, remote, local_train, remote_train = [], [], [], []
    for _ in range(args.rounds):
        wall, trained = sweep(None)
        local.append(wall)
        local_train.append(trained)
        wall, trained = sweep(Placement())
        remote.append(wall)
        remote_train.append(trained)
    ray.shutdown()

    env = environment.capture()
    per_local = statistics.median(local) / args.jobs
    per_remote = statistics.median(remote) / args.jobs
    overhead = per_remote - per_local
    print(f"{env.cpu_model}, {env.cpu_count} cores; ray {ray.__version__}, torch {env.versions.get('torch')}")
    print(f"local cluster start: {startup:.1f} s (once per sweep)")
    print(f"{args.jobs} jobs per sweep, {args.rounds} interleaved rounds, medians:")
    print(f"  local executor: {statistics.median(local):.2f} s ({per_local:.2f} s per task)")
    print(f"  ray executor:   {statistics.median(remote):.2f} s ({per_remote:.2f} s per task)")
    print(f"  ray / local:    {statistics.median(remote) / statistics.median(local):.3f}x")
    print(f"  overhead per task: {overhead:+.2f} s")
    print(
        f"  training seconds recorded per run: local {statistics.median(local_train) / args.jobs:.2f} s, "
        f"ray {statistics.median(remote_train) / args.jobs:.2f} s"
    )
    if overhead > 0:
        print(f"  overhead is 5% of a task at {overhead / 0.05:.0f} s per task, 1% at {overhead / 0.01:.0f} s")
        nodes = math.floor(per_remote / per_local) + 1
        print(
            f"  n tasks on k whole-node workers: {per_remote:.2f}·n/k s vs {per_local:.2f}·n s here: "
            f"faster from k = {nodes}"
        )


if __name__ == "__main__":
    main()
