"""Run actprof in a fresh interpreter, with the working tree's code or another git revision's, for
side-by-side benchmarks.

A revision is checked out once into ``.bench/ref-<rev>`` (a git worktree) and run with this venv's
Python and packages, its own ``actprof`` package first on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def checkout(revision: str) -> Path:
    """The worktree of ``revision`` (a commit, tag or branch), created on first use."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = ROOT / ".bench" / f"ref-{commit}"
    if not tree.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True, capture_output=True
        )
    return tree


def python(code: str, tree: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with ``tree``'s actprof (the working tree's by default).

    ``-P``: without it ``python -c`` puts the current directory first on the path, ahead of PYTHONPATH, and
    run from the repository root every "revision" would import the working tree's actprof.
    """
    tree = tree or ROOT
    check = f"import actprof, pathlib; assert pathlib.Path(actprof.__file__).is_relative_to({str(tree)!r})\n"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-P", "-c", check + code]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True, **kwargs)


def cli(args: list[str], tree: Path | None = None) -> subprocess.CompletedProcess:
    """``actprof ARGS`` with ``tree``'s actprof (the working tree's by default)."""
    return python(f"import sys; sys.argv = ['actprof', *{args!r}]; from actprof.cli import main; main()", tree)


# Runs in any revision: the subpackage layout (session 13 on) or the flat one before it.
TRAIN = """
import json
from pathlib import Path
from actprof import activations
try:
    from actprof.data import mnist as data
    from actprof.settings.training import TrainConfig
    from actprof.training.config import Recipe
    from actprof.training.loop import train
    from actprof.training.model import config_for
    network = lambda act: config_for(act, Recipe(architecture={architecture!r}))
except ImportError:
    from actprof import data
    from actprof.model import config_for
    from actprof.records import TrainConfig
    from actprof.train import train
    network = lambda act: config_for(act, architecture={architecture!r})
mnist = data.load_mnist(data_dir=Path({data_dir!r}), log=lambda m: None)
_, r = train(network(activations.get({act!r})), TrainConfig(seed={seed}, precision={precision!r}), mnist)
tail = r.step_loss[-50:]
print(json.dumps({{"images_per_second": r.images_per_second, "seconds": r.train_seconds,
                  "test_accuracy": r.test_accuracy, "precision": r.config.precision,
                  "tail_loss": sum(tail) / len(tail)}}))
"""


def train_run(
    data_dir: Path,
    act: str,
    *,
    architecture: str = "seed",
    seed: int = 0,
    precision: str = "auto",
    tree: Path | None = None,
) -> dict:
    """One ``train()`` on full MNIST in a fresh interpreter, so that nothing (thread pools, warm caches)
    is inherited: img/s, training seconds, test accuracy, the precision, the mean loss of the last 50 steps."""
    code = TRAIN.format(
        data_dir=str(Path(data_dir).resolve()), act=act, architecture=architecture, seed=seed, precision=precision
    )
    return json.loads(python(code, tree).stdout.strip().splitlines()[-1])
