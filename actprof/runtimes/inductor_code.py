"""What TorchInductor made of a network, read from the Python module it generated.

Inductor's CPU output calls two kinds of kernels: oneDNN ops it packed the weights for at freezing
(``torch.ops.mkldnn._convolution_pointwise(…, 'relu', …)``, ``_linear_pointwise``), whose unary attribute
names the activation fused into the convolution's epilogue ('none': nothing fused), and C++ loops it wrote
itself (``cpp_fused_elu_max_pool2d_with_indices_0``), named after the ATen ops they absorbed. Each becomes a
entry of the fusion census (``census``). Pure text parsing: nothing here imports torch.
"""

from __future__ import annotations

import re
from collections import Counter

from actprof.schema.profiling import FusionCensus

# ATen op names in Inductor's kernel names → the ONNX op type they come from. Network ops first: a C++ loop
# that absorbed one is that op's layer (an activation inside it is fused); a loop of activation ops alone runs
# the activation on its own.
NETWORK = {
    "convolution": "Conv",
    "max_pool2d_with_indices": "MaxPool",
    "avg_pool2d": "AveragePool",
    "addmm": "Gemm",
    "mm": "Gemm",
    "mean": "GlobalAveragePool",
    "native_batch_norm": "BatchNormalization",
    "_native_batch_norm_legit_no_training": "BatchNormalization",
    "cat": "Concat",
    "add": "Add",
}
ACTIVATION = {
    "relu": "Relu",
    "leaky_relu": "LeakyRelu",
    "elu": "Elu",
    "selu": "Selu",
    "gelu": "Gelu",
    "silu": "SiLU",
    "mish": "Mish",
    "hardswish": "HardSwish",
    "hardsigmoid": "HardSigmoid",
    "hardtanh": "Clip",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "softplus": "Softplus",
    "prelu": "PRelu",
    "_prelu_kernel": "PRelu",
    "celu": "Celu",
}
# oneDNN's unary attribute names (mkldnn_fusion.py's UnaryAttr) → the ONNX op type
ONEDNN_ATTR = {
    "relu": "Relu",
    "gelu": "Gelu",
    "swish": "SiLU",
    "hardswish": "HardSwish",
    "hardsigmoid": "HardSigmoid",
    "leaky_relu": "LeakyRelu",
    "hardtanh": "Clip",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
}
_TOKENS = sorted({*NETWORK, *ACTIVATION}, key=len, reverse=True)  # longest first: max_pool2d… before mm
_ONEDNN = re.compile(r"torch\.ops\.mkldnn\._(convolution|linear)_pointwise(?:\.\w+)?\((?P<args>[^\n]*)\)")
_MKL = re.compile(r"torch\.ops\.mkl\._mkl_linear")
_CPP = re.compile(r"\b(cpp_fused_\w+?)\(")
_FALLBACK = re.compile(r"\b(?:extern_kernels|torch\.ops\.aten)\.(\w+)(?:\.\w+)?\(")
_ATEN_OF = {onnx: aten for aten, onnx in ACTIVATION.items()}


def call_body(source: str) -> str:
    """The body of the generated module's ``call`` function: the kernels in the order they run."""
    start = source.find("def call(")
    if start < 0:
        return ""
    end = source.find("\ndef ", start + 1)
    return source[start : end if end > 0 else len(source)]


def census(
    name: str, source: str, sites: dict[str, int], *, provider: str, opt_level: str, precision: str = "fp32"
) -> FusionCensus:
    """The census of Inductor's code for a network whose activation sites are ``sites`` (op type → count).

    A site fused into a oneDNN convolution or linear is read off the op's unary attribute, exactly. Every other
    site is computed inside one of Inductor's C++ loops together with its neighbour (the pool that reads it, the
    bias add of an MKL linear): one pass over memory, but not the convolution's epilogue. Which loop holds it is
    not read (the loops' names list more ATen origins than they compute). A site Inductor left to an ATen
    fallback kernel (``extern_kernels`` or ``torch.ops.aten``) is counted as left on its own."""
    body = call_body(source)
    fused: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    for match in _ONEDNN.finditer(body):
        kind = "Conv" if match.group(1) == "convolution" else "Gemm"
        ops[f"oneDNN.{kind}"] += 1
        attr = _unary_attr(match.group("args"))
        if attr and attr != "none":
            fused[f"oneDNN.{kind}({ONEDNN_ATTR.get(attr, attr)})"] += 1
    ops["C++ loop"] += len(_CPP.findall(body))
    ops["mkl.Gemm"] += len(_MKL.findall(body))
    ops.update(f"aten.{op}" for op in _FALLBACK.findall(body))
    ops = +ops  # drops the kinds that did not occur
    left: dict[str, int] = {}
    for op, count in sites.items():
        in_epilogue = sum(n for key, n in fused.items() if key.endswith(f"({op})"))
        fallback = ops.get(f"aten.{_ATEN_OF.get(op, op.lower())}", 0)
        if fallback:
            left[op] = fallback
        in_loops = count - in_epilogue - fallback
        if in_loops > 0:
            fused[f"C++ loop({op})"] = in_loops
    ops, fused = dict(sorted(ops.items())), dict(sorted(fused.items()))
    return FusionCensus(name, provider, opt_level, ops, left, fused, reorders=0, precision=precision)


def loop_ops(kernel: str) -> list[str]:
    """The ONNX op types a ``cpp_fused_…_N`` kernel's name lists (ATen names it does not know are skipped);
    a profiler may prefix the name with its graph (``graph_3_cpp_fused_…``)."""
    name = re.sub(r"^(graph_\d+_)?cpp_fused_|_\d+$", "", kernel)
    ops: list[str] = []
    while name:
        token = next((t for t in _TOKENS if name == t or name.startswith(t + "_")), None)
        if token is None:
            name = name.partition("_")[2]
            continue
        op = NETWORK.get(token) or ACTIVATION[token]
        if op not in ops:
            ops.append(op)
        name = name[len(token) + 1 :]
    return sorted(ops)


def loop_label(kernel: str) -> str:
    """A C++ loop in a per-op profile: named by the ops it lists; activation time only where it lists nothing
    else (a loop with a pool or a bias add is the network's, with whatever activation it computes inside)."""
    ops = loop_ops(kernel)
    network = [op for op in ops if op in NETWORK.values()]
    return f"C++ loop({'+'.join(ops)})" if network or not ops else "+".join(ops)


def _unary_attr(args: str) -> str | None:
    """The unary attribute: the first string literal among a pointwise op's arguments."""
    literal = re.search(r"'([a-z_]*)'", args)
    return literal.group(1) if literal else None
