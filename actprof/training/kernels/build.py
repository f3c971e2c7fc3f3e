"""Build, trust and load the C kernels (``conv_pool.c``); the ctypes interface is generated from the source.

Built once per machine with the system's C compiler (``CC``, else ``cc`` or ``gcc``) into the user's cache
(``ACTPROF_KERNEL_DIR`` moves it), named by everything that decides the binary: the source, the flags, the
compiler and this CPU's features (for ``-march=native``).

Loading a shared library runs its code, so nothing is loaded on trust: the cache directory is created
private (0700), and the directory and the library must be owned by this user and writable by no one else
(``schema.trust.untrusted``); otherwise the kernels are not loaded, a one-line ``KernelWarning`` says why, and
training keeps torch's own layers (the same function, slower). A compiler that fails is said once, the same way.
``ACTPROF_KERNELS=0`` turns the kernels off (``ACTPROF_FUSED=0``, the older name, too).

The ABI is not mirrored by hand: the argument types of every exported function and the fields of the
``epilogue`` struct are read off ``conv_pool.c`` itself (``signatures``, ``epilogue_struct``), and the
library reports the struct's size and field offsets as it was compiled (``epilogue_layout``), which must
match ctypes' before anything is called. The epilogue kinds the C code knows are compiled in from ``KINDS``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from functools import cache
from pathlib import Path

from actprof.errors import ActprofWarning
from actprof.schema.environment import cpu_features
from actprof.schema.storage import user_cache
from actprof.schema.trust import private_dir, untrusted

SOURCE = Path(__file__).with_name("conv_pool.c")
# The epilogue kinds conv_pool.c computes, numbered by position (0: none); the activation table names them.
KINDS = ("NONE", "LEAKY", "ELU_FAMILY", "GELU", "GELU_TANH", "SILU", "MISH", "HARDSWISH", "PRELU", "SIGMOID", "TANH")
MAX_CHANNELS = 512
MAX_WIDTH = 4096


class KernelWarning(ActprofWarning):
    """actprof's kernels are not used here (not built, not trusted, or turned off): torch's layers run."""


def enabled() -> bool:
    return os.environ.get("ACTPROF_KERNELS", os.environ.get("ACTPROF_FUSED", "1")) != "0"


def kind(name: str) -> int:
    """The number the C code knows an epilogue kind by."""
    return KINDS.index(name)


def vector_lanes() -> int:
    """Channels per vector in the kernels: one AVX-512 register where the CPU has them, else 8 (one AVX2
    register). With 16 lanes on AVX2, GCC splits every vector in two, a channel block's nine weights and
    four sums no longer fit the sixteen registers, and the kernels ran 5.6-8.6x slower (Zen 3, RESULTS.md)."""
    return 16 if "avx512f" in cpu_features().split() else 8


LANES = vector_lanes()
FLAGS = (
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-shared",
    "-fPIC",
    f"-DLANES={LANES}",
    f"-DMAX_CHANNELS={MAX_CHANNELS}",
    f"-DMAX_WIDTH={MAX_WIDTH}",
    *(f"-DKIND_{name}={number}" for number, name in enumerate(KINDS)),
)
# Threads: OpenMP where the compiler has it (sharing torch's runtime), else the kernel runs on one thread.
THREADING = (("-fopenmp",), ())


# --- the ABI, read off the source ------------------------------------------------------------------

_C_TYPES = {
    "int": ctypes.c_int,
    "int32_t": ctypes.c_int32,
    "int64_t": ctypes.c_int64,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "float": ctypes.c_float,
}


_DECLARATION = re.compile(r"(?:const\s+)?(\w+)\s*(\*?)\s*(\w+)")


def _ctype(c_type: str, pointer: bool, struct: type[ctypes.Structure] | None = None):
    """Every pointer is passed as an address (c_void_p), but the epilogue's, which points to the struct."""
    if pointer:
        return ctypes.POINTER(struct) if struct is not None and c_type == "epilogue" else ctypes.c_void_p
    return _C_TYPES[c_type]


def epilogue_struct(source: str) -> type[ctypes.Structure]:
    """A ctypes Structure with the fields of conv_pool.c's ``typedef struct { ... } epilogue;``, in order."""
    body = re.search(r"typedef struct \{(.*?)\} epilogue;", source, re.S)
    if body is None:
        raise ValueError("conv_pool.c has no `typedef struct { ... } epilogue;`")
    fields = []
    for declaration in filter(None, (d.strip() for d in body.group(1).split(";"))):
        c_type, names = re.fullmatch(r"(?:const\s+)?(\w+)\s+(.*)", declaration, re.S).groups()
        for name in (n.strip() for n in names.split(",")):
            fields.append((name.lstrip("*").strip(), _ctype(c_type, name.startswith("*"))))
    return type("Epilogue", (ctypes.Structure,), {"_fields_": fields})


def signatures(source: str, struct: type[ctypes.Structure]) -> dict[str, list]:
    """Argument types of every function conv_pool.c exports (``int name(...) {`` at the start of a line)."""
    found = {}
    for name, params in re.findall(r"^int (\w+)\(([^)]*)\)\s*\{", source, re.M):
        declarations = [_DECLARATION.fullmatch(p.strip()).groups() for p in params.split(",")]
        found[name] = [_ctype(c_type, bool(star), struct) for c_type, star, _ in declarations]
    return found


Epilogue = epilogue_struct(SOURCE.read_text())


def layout_matches(lib: ctypes.CDLL, struct: type[ctypes.Structure]) -> bool:
    """Whether the compiled ``epilogue`` has ctypes' size and field offsets (``epilogue_layout`` writes its
    sizeof, then each field's offsetof, in declaration order)."""
    fields = [name for name, _ in struct._fields_]
    reported = (ctypes.c_int64 * (len(fields) + 1))()
    count = lib.epilogue_layout(reported, len(fields) + 1)
    expected = [ctypes.sizeof(struct), *(getattr(struct, name).offset for name in fields)]
    return count == len(expected) and list(reported) == expected


# --- building and loading (trusted as ``schema.trust`` says) ------------------------------------------


def cache_dir() -> Path:
    return user_cache("kernels", override="ACTPROF_KERNEL_DIR")


class NotBuilt(Exception):
    """The kernels cannot be built or loaded here; the message says why, in one line."""


def _compiler() -> str:
    named = os.environ.get("CC")
    compiler = shutil.which(named) if named else shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise NotBuilt(f"no C compiler {named!r} found (set CC to one)" if named else "no C compiler found (set CC)")
    return compiler


def library_path(flags: tuple[str, ...] = (*FLAGS, *THREADING[0])) -> Path:
    """Where the library built with ``flags`` lives in the cache: named by everything that decides the binary
    (the source, the flags, the compiler, this CPU's features, for -march=native)."""
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(flags).encode(), _compiler().encode(), cpu_features().encode()):
        key.update(part)
    return cache_dir() / f"conv_pool-{key.hexdigest()[:16]}.so"


def _build(flags: tuple[str, ...]) -> Path:
    """Compile the kernel into the cache (atomic, so concurrent workers agree); the path of the library, once
    the cache and the library are trusted."""
    target = library_path(flags)
    directory = target.parent
    try:
        private_dir(directory)
    except OSError as exc:
        raise NotBuilt(f"cannot create the kernel cache {directory}: {exc.strerror}") from None
    if (reason := untrusted(directory)) is not None:
        raise NotBuilt(f"the kernel cache is not safe to load from: {reason}")
    if not target.exists():
        with tempfile.TemporaryDirectory(dir=directory) as scratch:
            built = Path(scratch) / target.name
            command = [_compiler(), *flags, str(SOURCE), "-o", str(built), "-lm"]
            try:
                done = subprocess.run(command, capture_output=True)
            except OSError as exc:  # a compiler that cannot run
                raise NotBuilt(f"{Path(command[0]).name} cannot run ({exc.strerror})") from None
            if done.returncode != 0:
                lines = done.stderr.decode(errors="replace").splitlines()
                first = next((line for line in lines if "error" in line), "").strip()[:160] or "no message"
                raise NotBuilt(f"{Path(command[0]).name} failed to build them ({first})")
            os.chmod(built, 0o700)
            os.replace(built, target)
    if (reason := untrusted(target)) is not None:
        raise NotBuilt(f"refusing to load {target.name}: {reason}")
    return target


def _load(path: Path) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:  # a damaged cache file, a foreign libc
        raise NotBuilt(f"cannot load {path.name} ({str(exc)[:120]})") from None
    try:
        for name, argtypes in signatures(SOURCE.read_text(), Epilogue).items():
            function = getattr(lib, name)
            function.argtypes, function.restype = argtypes, ctypes.c_int
    except AttributeError as exc:  # a library that is not this source's
        raise NotBuilt(f"{path.name} lacks a kernel ({exc})") from None
    if not layout_matches(lib, Epilogue):
        raise NotBuilt(f"{path.name}: the compiled epilogue struct does not match its ctypes mirror")
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; None where they are turned off (checked at every call) or
    cannot be built, trusted or loaded (said once, as a KernelWarning)."""
    return _built() if enabled() else None


def forget() -> None:
    """Forget the library this process built or refused, so that the next ``library()`` tries again (after
    the cache or the compiler changed)."""
    _built.cache_clear()


def openmp() -> bool:
    """Whether the kernels loaded here run on OpenMP threads (built with -fopenmp), not on one thread."""
    return library() is not None and _OPENMP == [True]


_OPENMP: list[bool] = []  # whether the library _built() loaded has OpenMP


@cache
def _built() -> ctypes.CDLL | None:
    reasons = []
    for threading in THREADING:
        try:
            lib = _load(_build((*FLAGS, *threading)))
            _OPENMP[:] = ["-fopenmp" in threading]
            return lib
        except NotBuilt as exc:
            reasons.append(str(exc))
            if "failed to build" not in str(exc):  # only a compile error is worth a second try without OpenMP
                break
    warnings.warn(
        KernelWarning(
            f"actprof's training kernels are not used: {reasons[-1]}; training runs torch's layers instead "
            "(the same function, slower); ACTPROF_KERNELS=0 turns them off without this warning"
        ),
        stacklevel=2,
    )
    return None
