"""Every third-party module the package imports, at the top or lazily inside a function, is a declared
runtime dependency: the dev extra installed by the test command must not hide a missing one."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# import name -> distribution name, where they differ
DISTRIBUTION = {"onnxruntime": "onnxruntime-gpu", "markupsafe": "jinja2"}


def imported_modules() -> set[str]:
    names = set()
    for path in (ROOT / "actprof").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("actprof", "__future__")}


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0].strip().lower() for dep in project["dependencies"]}


def test_every_imported_package_is_a_runtime_dependency():
    missing = {DISTRIBUTION.get(m, m) for m in imported_modules()} - declared()
    assert not missing, f"imported by actprof but not in [project.dependencies]: {sorted(missing)}"
