"""The training step with this tree's kernels against another revision's ``conv_pool.c``, side by side.

Both libraries are built (each in a cache of its own) and loaded into one process; the same model's training
step then runs with one and the other in alternating blocks (``--rounds`` of ``--steps`` steps each, the first
three rounds a warm-up), so that the machine's drift hits both alike. Prints the median step time of each
and their ratio, per activation. The Python side is this tree's: the two sources must share the ABI
(``build.signatures`` and the checked struct layout say so when they do not).

    python benchmarks/kernel_step.py --reference 2e1924f [--acts relu,elu,prelu] [--batch 250]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from actprof import activations
from actprof.data.mnist import load_mnist, to_tensor
from actprof.schema.environment import cpu_model
from actprof.settings.training import TrainConfig
from actprof.training.kernels import build
from actprof.training.loop import Stepper
from actprof.training.model import config_for

ROOT = Path(__file__).resolve().parent.parent


def load(source: Path, cache: Path):
    """The kernels built from ``source`` into ``cache`` (the module's own build, pointed elsewhere)."""
    build.SOURCE, os.environ["ACTPROF_KERNEL_DIR"] = source, str(cache)
    build.forget()
    lib = build.library()
    if lib is None:
        raise SystemExit(f"the kernels of {source} could not be built or loaded here")
    return lib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="git revision whose conv_pool.c to compare with")
    parser.add_argument("--acts", default="relu,elu,prelu")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        old_source = Path(scratch) / "conv_pool.c"
        relative = build.SOURCE.relative_to(ROOT)
        shown = subprocess.run(
            ["git", "show", f"{args.reference}:{relative}"], cwd=ROOT, capture_output=True, check=True
        )
        old_source.write_bytes(shown.stdout)
        this_source = build.SOURCE
        libraries = {
            "reference": load(old_source, Path(scratch) / "old"),
            "this tree": load(this_source, Path(scratch) / "new"),
        }
        mnist = load_mnist(dataset="sample", log=lambda _m: None)
        xb = to_tensor(mnist.train_images[: args.batch]).contiguous(memory_format=torch.channels_last)
        yb = torch.from_numpy(mnist.train_labels[: args.batch].astype("int64"))
        print(f"{cpu_model()}, {torch.get_num_threads()} threads, batch {args.batch}, {build.LANES} lanes")
        for name in args.acts.split(","):
            config = config_for(activations.get(name))
            steppers = {
                code: Stepper.of(config, TrainConfig(precision="fp32"), torch.device("cpu")) for code in libraries
            }
            times: dict[str, list[float]] = {code: [] for code in libraries}
            for _ in range(args.rounds):
                for code, lib in libraries.items():
                    build._built = lambda lib=lib: lib  # library() now returns this one
                    started = time.perf_counter()
                    for _ in range(args.steps):
                        steppers[code].step(xb, yb)
                    times[code].append((time.perf_counter() - started) / args.steps * 1e3)
            old, new = (statistics.median(times[code][3:]) for code in libraries)
            ratio = f"{new / old:.3f}x"
            print(
                f"{name:>10}: step {old:.2f} ms with {args.reference}'s kernels, {new:.2f} ms with this tree's: {ratio}"
            )


if __name__ == "__main__":
    main()
