"""Every third-party module the package imports, at the top or lazily inside a function, is a declared
runtime dependency: the dev extra installed by the test command must not hide a missing one."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# import name -> distribution name, where they differ
DISTRIBUTION = {"onnxruntime": "onnxruntime-gpu", "markupsafe": "jinja2"}
# optional extras: imported only by the module of that integration, which refuses cleanly without it
EXTRAS = {"openvino": "runtimes/openvino.py", "ray": "launchers/ray.py", "executorch": "runtimes/executorch.py"}


def modules() -> list[Path]:
    """Every module of the package, its subpackages' included."""
    return sorted((ROOT / "actprof").rglob("*.py"))


def imported_modules(paths=None) -> set[str]:
    names = set()
    for path in paths or modules():
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
        elsewhere = [
            name
            for p in modules()
            if (name := p.relative_to(ROOT / "actprof").as_posix()) != module and package in imported_modules([p])
        ]
        assert not elsewhere, f"{package} is an optional extra but {elsewhere} import it"


def test_every_data_file_the_package_reads_ships_with_it():
    from fnmatch import fnmatch

    # package-data patterns are relative to the directory of the package that names them
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = [
        (package.replace(".", "/") + "/", pattern) for package, globs in package_data.items() for pattern in globs
    ]
    files = [p.relative_to(ROOT).as_posix() for p in (ROOT / "actprof").rglob("*") if p.is_file()]
    data = [f for f in files if not f.endswith((".py", ".pyc")) and "__pycache__" not in f]
    unshipped = [
        f
        for f in data
        if not any(f.startswith(where) and fnmatch(f.removeprefix(where), pattern) for where, pattern in patterns)
    ]
    assert not unshipped, f"in actprof/ but not in package-data (a wheel would lack them): {unshipped}"


def test_the_command_line_starts_without_torch_onnx_or_a_runtime():
    """`actprof --help` is instant, and a Ctrl-C at start-up lands in main(): no heavy import before it."""
    code = (
        "import sys, actprof.cli, actprof.cli.main; "
        "heavy = {'torch', 'onnx', 'onnxruntime', 'openvino', 'ray', 'numpy'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
