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
# optional extras: imported only by the module of that integration, which refuses cleanly without it
EXTRAS = {"openvino": "runtime_openvino.py", "ray": "cluster.py"}


def imported_modules(paths=None) -> set[str]:
    names = set()
    for path in paths or (ROOT / "actprof").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("actprof", "__future__")}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0].strip().lower() for dep in requirements}


def declared(extra: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return _names(project["optional-dependencies"][extra] if extra else project["dependencies"])


def test_every_imported_package_is_a_runtime_dependency():
    missing = {DISTRIBUTION.get(m, m) for m in imported_modules()} - declared() - set(EXTRAS)
    assert not missing, f"imported by actprof but not in [project.dependencies]: {sorted(missing)}"


def test_optional_packages_are_extras_imported_only_where_they_belong():
    for package, module in EXTRAS.items():
        assert package in declared(package) and package in declared("dev")
        modules = (ROOT / "actprof").glob("*.py")
        elsewhere = [p.name for p in modules if p.name != module and package in imported_modules([p])]
        assert not elsewhere, f"{package} is an optional extra but {elsewhere} import it"


def test_every_data_file_the_package_reads_ships_with_it():
    from fnmatch import fnmatch

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["actprof"]
    files = [p.relative_to(ROOT / "actprof").as_posix() for p in (ROOT / "actprof").rglob("*") if p.is_file()]
    data = [f for f in files if not f.endswith((".py", ".pyc")) and "__pycache__" not in f]
    unshipped = [f for f in data if not any(fnmatch(f, pattern) for pattern in patterns)]
    assert not unshipped, f"in actprof/ but not in package-data (a wheel would lack them): {unshipped}"
