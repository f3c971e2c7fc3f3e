"""Run actprof's code as of another git revision beside the working tree's, for side-by-side benchmarks.

The revision is checked out once into ``.bench/ref-<rev>`` (a git worktree) and run with this venv's
Python and packages, its own ``actprof`` package first on the path.
"""

from __future__ import annotations

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
    """Run ``code`` in a fresh interpreter with ``tree``'s actprof (the working tree's by default)."""
    env = {**os.environ, "PYTHONPATH": str(tree or ROOT)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, **kwargs)


def cli(args: list[str], tree: Path | None = None) -> subprocess.CompletedProcess:
    """``actprof ARGS`` with ``tree``'s actprof (the working tree's by default)."""
    return python(f"import sys; sys.argv = ['actprof', *{args!r}]; from actprof.cli import main; main()", tree)
