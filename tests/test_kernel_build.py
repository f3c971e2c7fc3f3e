"""The C kernels are loaded only when they can be trusted, their ABI is checked, and a failure is said once."""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import subprocess
import warnings

import pytest
import torch

from actprof import activations
from actprof.training.kernels import build, ops
from tests.helpers import FAST


@pytest.fixture
def kernel_dir(tmp_path, monkeypatch):
    """An empty kernel cache of this test's own, and a library cache cleared before and after."""
    directory = tmp_path / "kernels"
    monkeypatch.setenv("ACTPROF_KERNEL_DIR", str(directory))
    monkeypatch.delenv("ACTPROF_KERNELS", raising=False)
    monkeypatch.delenv("ACTPROF_FUSED", raising=False)
    build.forget()
    yield directory
    build.forget()


def _load_with_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lib = build.library()
    return lib, [w for w in caught if issubclass(w.category, build.KernelWarning)]


def test_the_cache_is_created_private_and_the_library_loads(kernel_dir):
    lib, said = _load_with_warnings()
    assert lib is not None and not said
    assert stat.S_IMODE(kernel_dir.stat().st_mode) == 0o700
    assert build.untrusted(build.library_path()) is None


def _plant(path, mode: int) -> None:
    """A shared library that is not actprof's, where actprof's would be (its name is public knowledge): it
    loads, and exports a function of the same name that reports a layout that matches nothing."""
    source = path.parent.parent / "planted.c"
    source.write_text("int epilogue_layout(long *out, int n) { return -1; }\n")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    subprocess.run([shutil.which("cc") or "gcc", "-shared", "-fPIC", str(source), "-o", str(path)], check=True)
    os.chmod(path, mode)


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757], ids=["world-writable", "group-writable", "other-writable"])
def test_a_planted_writable_library_is_not_loaded(kernel_dir, mode):
    target = build.library_path()
    _plant(target, mode)
    lib, said = _load_with_warnings()
    assert lib is None
    assert len(said) == 1 and "writable by others" in str(said[0].message) and "torch's layers" in str(said[0].message)


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_library_owned_by_another_user_is_not_loaded(kernel_dir):
    target = build.library_path()
    _plant(target, 0o700)
    os.chown(target, 1, 1)
    lib, said = _load_with_warnings()
    assert lib is None and "owned by another user" in str(said[0].message)


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory to another user needs root")
def test_a_cache_directory_of_another_user_is_not_loaded_from(kernel_dir):
    kernel_dir.mkdir(mode=0o700)
    os.chown(kernel_dir, 1, 1)
    lib, said = _load_with_warnings()
    assert lib is None and "not safe to load from" in str(said[0].message)


def test_a_trusted_library_that_is_not_ours_is_refused_by_its_layout(kernel_dir):
    _plant(build.library_path(), 0o700)
    lib, said = _load_with_warnings()
    assert lib is None and "lacks a kernel" in str(said[0].message)


def test_a_symbolic_link_is_not_loaded(kernel_dir, tmp_path):
    real = tmp_path / "links" / "elsewhere.so"
    _plant(real, 0o700)
    target = build.library_path()
    target.parent.mkdir(mode=0o700)
    target.symlink_to(real)
    lib, said = _load_with_warnings()
    assert lib is None and "symbolic link" in str(said[0].message)


def test_training_goes_on_without_an_untrusted_library(kernel_dir, sample, tmp_path):
    """The planted library is refused, said once, and the model trains with torch's layers."""
    from actprof.training.loop import train
    from actprof.training.model import config_for

    _plant(build.library_path(), 0o777)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, result = train(config_for(activations.get("elu")), FAST, sample)
    assert [w.category for w in caught].count(build.KernelWarning) == 1
    assert result.test_accuracy > 0.5


def test_a_compiler_that_fails_is_said_once_and_torch_trains(kernel_dir, tmp_path, monkeypatch):
    compiler = tmp_path / "broken-cc"
    compiler.write_text("#!/bin/sh\necho 'conv_pool.c:1: error: this compiler is broken' >&2\nexit 1\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CC", str(compiler))
    lib, said = _load_with_warnings()
    assert lib is None and len(said) == 1
    assert "failed to build them (conv_pool.c:1: error: this compiler is broken)" in str(said[0].message)
    x = torch.rand(4, 1, 28, 28)
    assert not ops.applies(x, torch.nn.Conv2d(1, 32, 3))  # the model keeps torch's layers


def test_kernels_turned_off_are_silent(kernel_dir, monkeypatch):
    monkeypatch.setenv("ACTPROF_KERNELS", "0")
    lib, said = _load_with_warnings()
    assert lib is None and not said and not kernel_dir.exists()


# --- the ABI, generated from the C source and checked against the compiled struct ---------------------


def test_the_struct_mirror_is_read_off_the_source():
    names = [name for name, _ in build.Epilogue._fields_]
    assert names == ["kind", "a", "b", "c", "words", "halves", "bits", "dropped", "scale", "before", "slope"]
    assert dict(build.Epilogue._fields_)["words"] is ctypes.c_void_p
    assert dict(build.Epilogue._fields_)["halves"] is ctypes.c_int64


def test_every_exported_function_gets_its_argument_types_from_the_source():
    found = build.signatures(build.SOURCE.read_text(), build.Epilogue)
    assert set(found) == {
        "epilogue_layout",
        "conv_pool_forward",
        "conv_pool_backward",
        "max_pool_forward",
        "max_pool_backward",
        "bernoulli_keep",
    }
    assert len(found["conv_pool_forward"]) == 15
    assert found["bernoulli_keep"] == [ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32]
    assert found["conv_pool_forward"][-1] == ctypes.POINTER(build.Epilogue)


def test_a_struct_that_does_not_match_the_compiled_one_is_caught():
    lib = build.library()
    assert lib is not None and build.layout_matches(lib, build.Epilogue)
    swapped = list(build.Epilogue._fields_)
    swapped[1], swapped[4] = swapped[4], swapped[1]  # a float and a pointer trade places
    wrong = type("Wrong", (ctypes.Structure,), {"_fields_": swapped})
    assert not build.layout_matches(lib, wrong)
    shorter = type("Shorter", (ctypes.Structure,), {"_fields_": build.Epilogue._fields_[:-1]})
    assert not build.layout_matches(lib, shorter)


def test_every_kind_the_table_names_is_one_the_kernels_know():
    named = {a.kernel.kind for a in activations.ACTIVATIONS.values() if a.kernel is not None}
    assert named <= set(build.KINDS) and "NONE" not in named
    assert set(build.KINDS) - {"NONE"} == named  # and the kernels know no kind the table does not use
