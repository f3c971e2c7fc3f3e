"""The options the commands share, with their help texts; defaults are read off the configs, never retyped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from actprof.export.config import ExportOptions
from actprof.measure.config import SWAP_PROFILE, MicrobenchSettings
from actprof.settings.profile import INFERENCE_PRECISIONS, PROVIDERS, RUN_PROFILE, SUPPORTED_PRECISIONS, ProfileSettings
from actprof.settings.training import TrainConfig

TRAIN = TrainConfig()
EXPORT = ExportOptions()
PROFILE = ProfileSettings()
RUN = RUN_PROFILE
SWAP = SWAP_PROFILE
MICROBENCH = MicrobenchSettings()


def listed(values) -> str:
    """A default list as the command line writes it: ``1,64``."""
    return ",".join(str(v) for v in values)


ActOpt = Annotated[str, typer.Option("--act", help="Activation name, comma list, or 'all'.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output directory.")]
ModelsOpt = Annotated[Path, typer.Option("--models", help="Directory with <act>.onnx + <act>.json.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="Threads (0: all cores).")]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Directory with the four MNIST IDX files (.gz or raw).")
]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="auto | full | sample.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="Where PyTorch trains: cpu | cuda.")]
ProviderOpt = Annotated[
    str,
    typer.Option(
        "--provider",
        help=f"Comma list of {', '.join(PROVIDERS)} (cpu, cuda: ONNX Runtime; torch: eager PyTorch; inductor: "
        "torch.compile; executorch: ExecuTorch with XNNPACK), or all (every provider that binds here).",
    ),
]


def _where_precisions_run() -> str:
    where = {p: [name for name, runs in SUPPORTED_PRECISIONS.items() if p in runs] for p in INFERENCE_PRECISIONS}
    return ", ".join(p if p == "fp32" else f"{p} ({', '.join(where[p])})" for p in INFERENCE_PRECISIONS)


InferencePrecisionOpt = Annotated[
    str, typer.Option("--precision", help=f"Inference precisions, a comma list: {_where_precisions_run()}.")
]
BatchSizesOpt = Annotated[str, typer.Option("--batch-sizes", help="Comma list of batch sizes.")]
MinTimeOpt = Annotated[float, typer.Option("--min-time", help="Seconds of timed runs per target, at least.")]
MinRunsOpt = Annotated[int, typer.Option("--min-runs", help="Timed runs per target, at least.")]
BaselineOpt = Annotated[str, typer.Option("--baseline", help="Activation every other one is judged against.")]
SeedOpt = Annotated[str, typer.Option("--seed", help="Seed, or a comma list: same init draw and data order for all.")]
SeedsOpt = Annotated[int | None, typer.Option("--seeds", help="Train each activation with N seeds (seed, seed+1, …).")]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="Training epochs.")]
LrOpt = Annotated[
    str,
    typer.Option("--lr", help="Learning rate, or a comma list to sweep (each activation's best chosen on validation)."),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="seed (the Keras CNN) | deep (6 conv, no batch norm) | mlp:DEPTHxWIDTH (mlp:8x128) | mlp:W1-W2 "
        "(mlp:512-256) | FILE.py:FUNCTION (your network: FUNCTION(act, input_shape=, num_classes=) returns an "
        "nn.Module; loading FILE runs its code).",
    ),
]
BatchNormOpt = Annotated[
    bool, typer.Option("--batch-norm", help="mlp:… networks: BatchNorm1d after each hidden layer, before its act.")
]
StandardizeOpt = Annotated[
    bool, typer.Option("--standardize", help="mlp:… networks: standardize pixels (mean 0.1307, std 0.3081) first.")
]
OptimizerOpt = Annotated[str, typer.Option("--optimizer", help="adam | sgd (at --lr).")]
MomentumOpt = Annotated[float, typer.Option("--momentum", help="SGD momentum, in [0, 1).")]
NesterovOpt = Annotated[bool, typer.Option("--nesterov", help="Nesterov momentum (--optimizer sgd --momentum > 0).")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", help="Training batch size.")]
InitOpt = Annotated[str | None, typer.Option("--init", help="he | lecun | glorot | default (family default).")]
DropoutOpt = Annotated[
    float | None,
    typer.Option(
        "--dropout",
        help="Dropout rate (default 0.25): after each pooling block in seed and deep, after each hidden layer's "
        "activation in mlp:…; selu takes --alpha-dropout instead; FILE.py:FUNCTION networks keep their own (a "
        "nonzero rate is refused).",
    ),
]
AlphaDropoutOpt = Annotated[
    float | None, typer.Option("--alpha-dropout", help="Alpha-dropout rate for SELU (default 0.05).")
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Retrain every run, even those already saved in <models>/runs/.")
]
ExecutorOpt = Annotated[
    str, typer.Option("--executor", help="local (here, one run after another) | ray (one Ray task per run).")
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="Ray cluster to join (host:port; default: RAY_ADDRESS or a new local one)."),
]
CpusPerTaskOpt = Annotated[
    int, typer.Option("--cpus-per-task", help="CPUs each Ray training task reserves (0: a whole node's).")
]
ProfileOnOpt = Annotated[
    str | None,
    typer.Option(
        "--profile-on",
        help="Profile on the Ray node offering this custom resource (ray start --resources '{\"NAME\": 1}').",
    ),
]
HighlightOpt = Annotated[
    str | None,
    typer.Option(
        "--highlight", help="Activations drawn in colour in the curves (default: the decision table's top 3)."
    ),
]
RewriteOpt = Annotated[
    str, typer.Option("--rewrite", help="none | pool-first (also <act>+pool-first.onnx: f after MaxPool, exact).")
]
TrainStackOpt = Annotated[
    str,
    typer.Option(
        "--train-stack",
        help="The stack training seconds are priced on: eager (the network as a user writes it), compile "
        "(torch.compile), actprof (its fast trainer).",
    ),
]
StacksOpt = Annotated[
    str, typer.Option("--stacks", help="Stacks to time the training step on: a comma list of eager, compile, actprof.")
]
