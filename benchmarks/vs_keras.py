"""actprof's trainer against the blog post's Keras implementation of the same CNN, side by side.

Installs TensorFlow/Keras into its own venv under .bench/ (never a project dependency), then runs both
trainers interleaved (Keras, actprof, Keras, actprof …) on the same images: full MNIST's first 54,000
training images (what actprof trains on after holding out 10% for validation), batch 250, one epoch,
Adam 1e-3, He-normal init. Throughput is images per second of training, validation excluded, first
step (graph tracing / warm-up) included on both sides.

    python benchmarks/vs_keras.py --data-dir ../shared/data/mnist [--acts relu,elu] [--repeats 3] [--model deep]

``--model deep`` runs actprof's deep CNN in both (written here in Keras layer for layer).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from reference import train_run

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench"
KERAS_VENV = BENCH / "keras-venv"
TF_VERSION = "2.21.0"

KERAS_WORKER = r"""
import json, sys, time
import numpy as np
import keras
from keras import activations as A, layers

data = np.load(sys.argv[1])
act = sys.argv[2]
x = (data["x"].astype("float32") / 255.0)[..., None]
y = keras.utils.to_categorical(data["y"], 10)
functions = {
    "relu": A.relu, "elu": A.elu, "selu": A.selu, "gelu": A.gelu, "tanh": A.tanh, "sigmoid": A.sigmoid,
    "softplus": A.softplus, "silu": A.silu, "mish": A.mish, "hardswish": A.hard_silu,
    "leaky_relu": lambda t: A.leaky_relu(t, negative_slope=0.01),
    "celu": lambda t: A.celu(t, alpha=1.0), "gelu_tanh": lambda t: A.gelu(t, approximate=True),
}

def activation(shared_axes):
    if act == "prelu":
        return layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=shared_axes)
    return layers.Activation(functions[act])

init = "lecun_normal" if act == "selu" else ("glorot_uniform" if act in ("sigmoid", "tanh") else "he_normal")
drop = (lambda: layers.AlphaDropout(0.05)) if act == "selu" else (lambda: layers.Dropout(0.25))
if sys.argv[3] == "seed":  # the blog post's CNN
    body = [
        layers.Conv2D(32, 3, kernel_initializer=init), activation([1, 2, 3]), layers.MaxPooling2D(2), drop(),
        layers.Conv2D(64, 3, kernel_initializer=init), activation([1, 2, 3]), layers.MaxPooling2D(2), drop(),
    ]
else:  # actprof's deep CNN: 3 x [conv 3x3 same, act, conv 3x3 same, act, max pool 2, dropout], 16/32/64 wide
    body = [
        layer
        for width in (16, 32, 64)
        for layer in (
            layers.Conv2D(width, 3, padding="same", kernel_initializer=init), activation([1, 2, 3]),
            layers.Conv2D(width, 3, padding="same", kernel_initializer=init), activation([1, 2, 3]),
            layers.MaxPooling2D(2), drop(),
        )
    ]
model = keras.Sequential([
    keras.Input((28, 28, 1)),
    *body,
    layers.Flatten(),
    layers.Dense(256, kernel_initializer=init), activation([1]),
    layers.Dense(10, activation="softmax", kernel_initializer=init),
])
model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
started = time.perf_counter()
history = model.fit(x, y, batch_size=250, epochs=1, verbose=0, shuffle=True)
seconds = time.perf_counter() - started
print(json.dumps({"images_per_second": len(x) / seconds, "seconds": seconds,
                  "train_accuracy": float(history.history["accuracy"][-1])}))
"""


def ensure_keras() -> Path:
    python = KERAS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(KERAS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"tensorflow-cpu=={TF_VERSION}"], check=True)
    return python


def run_keras(python: Path, images: Path, act: str, architecture: str = "seed") -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(KERAS_WORKER)
    out = subprocess.run(
        [str(python), fh.name, str(images), act, architecture],
        capture_output=True,
        text=True,
        check=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--acts", default="relu,elu")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", default="auto", help="actprof's training precision: auto | fp32 | bf16")
    parser.add_argument("--model", default="seed", choices=["seed", "deep"], help="the network, in both")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from actprof.data import mnist as data
    from actprof.data.mnist import validation_split
    from actprof.schema.environment import cpu_model

    mnist = data.load_mnist(data_dir=args.data_dir, log=lambda m: None)
    train_idx, _ = validation_split(len(mnist.train_labels))
    BENCH.mkdir(exist_ok=True)
    images = BENCH / "mnist-train-54k.npz"
    np.savez(images, x=mnist.train_images[train_idx], y=mnist.train_labels[train_idx])
    python = ensure_keras()

    header = f"{'activation':>10} {'Keras img/s':>12} {'actprof img/s':>14} {'actprof/Keras':>14}"
    print(f"{args.model} CNN on {cpu_model()} ({os.cpu_count()} CPUs), interleaved: Keras, actprof, Keras, …")
    print(f"{header}  (medians of {args.repeats})")
    for act in args.acts.split(","):
        keras_runs, ours = [], []
        for _ in range(args.repeats):  # interleaved: drift hits both alike
            keras_runs.append(run_keras(python, images, act, args.model)["images_per_second"])
            run = train_run(args.data_dir, act, architecture=args.model, precision=args.precision)
            ours.append(run["images_per_second"])
        k, o = statistics.median(keras_runs), statistics.median(ours)
        runs = f"keras {[round(v) for v in keras_runs]}, actprof {[round(v) for v in ours]}"
        print(f"{act:>10} {k:>12,.0f} {o:>14,.0f} {o / k:>13.2f}x   {runs}")


if __name__ == "__main__":
    main()
