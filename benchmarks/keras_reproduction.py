"""The 25-epoch reproduction of the published Keras table, with actprof's trainer (slow: minutes per run).

The blog posts' recipe (machinecurve, "ELU with Keras" and "Leaky ReLU with Keras"): the seed CNN, He-normal
init, Adam 1e-3, batch 250, dropout 0.25, 25 epochs, 20% of the training set held out for validation
(48,000 images trained on; Keras' ``validation_split`` holds out the last 20%, actprof a fixed random 20%),
ELU with alpha 0.1 and LeakyReLU with slope 0.1.
Published test accuracies (one run each): ReLU 99.18%, ELU 99.22%, LeakyReLU(0.1) 99.28%.

Test accuracy is on all 10,000 test images, per seed at the training precision (bf16 autocast where the CPU
has it: ``--precision``), and the exported fp32 model's in ONNX Runtime for the first seed. Prints a
Markdown table; paste it into benchmarks/RESULTS.md.

    python benchmarks/keras_reproduction.py --data-dir ../shared/data/mnist [--seeds 2] [--epochs 25]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

PUBLISHED = {"relu": 0.9918, "elu": 0.9922, "leaky_relu": 0.9928}
PARAMS = {"relu": None, "elu": 0.1, "leaky_relu": 0.1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--precision", default="auto", help="training precision: auto | fp32 | bf16")
    args = parser.parse_args()

    from actprof import api
    from actprof.data import mnist as data
    from actprof.schema import environment

    mnist = data.load_mnist(data_dir=args.data_dir, dataset="full", log=print)
    config = api.TrainConfig(epochs=args.epochs, batch_size=250, lr=1e-3, val_fraction=0.2, precision=args.precision)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        for name, param in PARAMS.items():
            trained = api.train_export(
                [name],
                train=config,
                sweep=api.Sweep.of(config, extra_seeds=range(1, args.seeds)),
                recipe=api.Recipe(param=param, init="he"),
                export=api.ExportOptions(out=Path(out)),
                data=mnist,
            )
            trained.check()
            record = trained.records[0]
            accuracies = [r.test_accuracy for r in record.runs]
            rows.append((name, param, accuracies, record))
            print(f"{name}: {[f'{100 * a:.2f}' for a in accuracies]} ({time.perf_counter() - started:.0f} s so far)")
    env = environment.capture()
    print(
        f"\n{env.cpu_model}, {env.cpu_count} cores; torch {env.versions.get('torch')}; "
        f"{args.epochs} epochs, {args.seeds} seed(s), training precision {rows[0][3].train.config.precision}; "
        f"{time.perf_counter() - started:.0f} s in all\n"
    )
    print("| activation | published | actprof (mean) | per seed | Δ (pp) | ONNX fp32, seed 0 | train s per run |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for name, param, accuracies, record in rows:
        mean = statistics.fmean(accuracies)
        label = name + (f"({param:g})" if param is not None else "")
        seconds = statistics.fmean(r.train_seconds for r in record.runs)
        print(
            f"| {label} | {100 * PUBLISHED[name]:.2f}% | {100 * mean:.2f}% | "
            f"{', '.join(f'{100 * a:.2f}' for a in accuracies)} | {100 * (mean - PUBLISHED[name]):+.2f} | "
            f"{100 * record.export.onnx_test_accuracy:.2f}% | {seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
