"""The published experiments ``actprof reproduce`` runs: each one's network, recipe and published numbers, read
from its source (the notebook or post named), in one table.

A recipe is plain data: the pipeline turns it into the configs it trains with, the analysis puts the numbers
it measures beside the published ones. Where actprof cannot do exactly what the source did, ``differences``
says so; the report prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

# What a published number measures, and how actprof reads the same off a run.
METRICS = {
    "test": "test accuracy after the last epoch",
    "val@1": "validation accuracy after epoch 1",
    "val@last": "validation accuracy after the last epoch",
}


COST_MEASURED_ON = "a 2-core AMD EPYC (Zen 3, AVX2), fp32"


@dataclass(frozen=True)
class Arm:
    """One activation as the experiment trained it."""

    activation: str
    init: str  # he | lecun | glorot | default
    param: float | None = None  # the activation's parameter where the source set one
    label: str = ""  # how the source names it ("Swish" for silu); "" → the activation's name


@dataclass(frozen=True)
class Cell:
    """One network of the experiment's grid."""

    label: str  # how the source names it ("15 layers")
    model: str  # the --model spec


@dataclass(frozen=True)
class Published:
    cell: str  # a Cell label
    activation: str
    metric: str  # a METRICS key
    value: float  # accuracy in [0, 1]
    note: str = ""  # where it was read ("read off the figure")


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    source: str  # the notebook or post, as a link
    claim: str  # what the source says the experiment shows
    cells: tuple[Cell, ...]
    arms: tuple[Arm, ...]
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    dropout: float
    alpha_dropout: float
    val_fraction: float
    published: tuple[Published, ...]
    differences: tuple[str, ...]
    cost: str  # wall time at 3 seeds, measured on COST_MEASURED_ON
    momentum: float = 0.0
    batch_norm: bool = False
    standardize: bool = False

    @property
    def trainings(self) -> int:
        """Trainings per seed."""
        return len(self.cells) * len(self.arms)


SELU_MNIST = Experiment(
    name="selu-mnist",
    title="Self-normalizing networks: the SELU authors' MNIST MLP tutorial",
    source="https://github.com/bioinf-jku/SNNs/blob/master/Pytorch/SelfNormalizingNetworks_MLP_MNIST.ipynb",
    claim="SELU with alpha dropout trains an MLP much faster than ReLU (80.90% vs 54.21% validation accuracy "
    "after one epoch of plain SGD) and ends higher (92.04% vs 90.76% test accuracy after 20 epochs)",
    cells=(Cell("784-512-256-10", "mlp:512-256"),),
    arms=(Arm("relu", "default", label="ReLU"), Arm("selu", "lecun", label="SELU")),
    optimizer="sgd",
    lr=1e-3,
    batch_size=128,
    epochs=20,
    dropout=0.05,
    alpha_dropout=0.05,
    val_fraction=1 / 6,  # 10,000 of the 60,000 training images, as the notebook holds out
    standardize=True,
    published=(
        Published("784-512-256-10", "relu", "val@1", 0.5421),
        Published("784-512-256-10", "selu", "val@1", 0.8090),
        Published("784-512-256-10", "relu", "val@last", 0.8998),
        Published("784-512-256-10", "selu", "val@last", 0.9124),
        Published("784-512-256-10", "relu", "test", 0.9076, "the best-validation epoch's model"),
        Published("784-512-256-10", "selu", "test", 0.9204, "the best-validation epoch's model"),
    ),
    differences=(
        "the notebook scores the test set with the epoch of best validation accuracy; actprof with the last",
        "the notebook's validation split is drawn with numpy seed 42 and drops the last partial batch; actprof's "
        "is its own fixed 1/6 split, all of it evaluated",
        "ReLU keeps PyTorch's default init, as in the notebook (it initializes only the SELU network)",
    ),
    cost="8 min",
)

MISH_DEPTH = Experiment(
    name="mish-depth",
    title="Mish's depth experiment: plain deep MLPs with batch norm, ReLU vs Swish vs Mish",
    source="https://github.com/digantamisra98/Mish/blob/master/Layers_Acc.ipynb",
    claim="as fully connected networks grow from 15 to 25 layers, ReLU and Swish lose test accuracy sharply while "
    "Mish holds (Swish 98.20% → 39.68%, Mish 98.43% → 85.16%)",
    cells=(Cell("15 layers", "mlp:12x500"), Cell("25 layers", "mlp:22x500")),
    arms=(
        Arm("relu", "glorot", label="ReLU"),
        Arm("silu", "glorot", label="Swish"),
        Arm("mish", "glorot", label="Mish"),
    ),
    optimizer="sgd",
    lr=0.01,
    batch_size=128,
    epochs=10,
    dropout=0.25,
    alpha_dropout=0.05,  # unused: no SELU arm
    val_fraction=0.1,
    batch_norm=True,
    published=(
        Published("15 layers", "silu", "test", 0.9820),
        Published("25 layers", "silu", "test", 0.3968),
        Published("15 layers", "mish", "test", 0.9843),
        Published("25 layers", "mish", "test", 0.8516),
        Published("15 layers", "relu", "test", 0.97, "read off the notebook's figure; no printed value"),
        Published("25 layers", "relu", "test", 0.23, "read off the notebook's figure; no printed value"),
    ),
    differences=(
        "the notebook's network starts with two convolutions (20 and 50 filters, 5×5), a max-pool and dropout "
        "before the dense blocks, and counts layers as dense blocks + 3 (15 layers = 12 blocks); the paper's text "
        "describes fully connected networks, which is what actprof trains: 12 and 22 Dense-500 blocks",
        "Keras' batch norm (momentum 0.99, eps 1e-3) against PyTorch's (0.1, i.e. 0.9 in Keras terms; eps 1e-5)",
        "the notebook validates on the test set; actprof holds out 10% of the training images",
        "only the Mish runs are in the notebook; Swish's numbers are typed into it, ReLU's only drawn in its figure",
    ),
    cost="80 min",
)

KERAS_BLOG = Experiment(
    name="keras-blog",
    title="The Keras ELU / Leaky ReLU blog posts actprof grew from: the seed CNN for 25 epochs",
    source='machinecurve.com, "How to use ELU with Keras?" (2019-12-09) and "Using Leaky ReLU with Keras"',
    claim="ELU (α 0.1) and Leaky ReLU (α 0.1) reach slightly higher test accuracy than ReLU "
    "(99.22% and 99.28% vs 99.18%)",
    cells=(Cell("seed CNN", "seed"),),
    arms=(
        Arm("relu", "he", label="ReLU"),
        Arm("elu", "he", param=0.1, label="ELU (α 0.1)"),
        Arm("leaky_relu", "he", param=0.1, label="Leaky ReLU (α 0.1)"),
    ),
    optimizer="adam",
    lr=1e-3,
    batch_size=250,
    epochs=25,
    dropout=0.25,
    alpha_dropout=0.05,
    val_fraction=0.2,
    published=(
        Published("seed CNN", "relu", "test", 0.9918),
        Published("seed CNN", "elu", "test", 0.9922),
        Published("seed CNN", "leaky_relu", "test", 0.9928),
    ),
    differences=(
        "Keras' validation_split holds out the last 20% of the training images; actprof a fixed random 20%",
        "each post is one run; actprof runs seeds and asks whether one run like it falls inside their spread",
    ),
    cost="about 75 min (76 min measured on a 2-core Zen 3)",
)

EXPERIMENTS = {e.name: e for e in (SELU_MNIST, MISH_DEPTH, KERAS_BLOG)}
