"""Do two revisions of actprof give the same records? Run one fixed workload with each, then compare.

    python scripts/same_records.py capture OUT [--rev REV]   # the workload with REV's actprof (default: this tree)
    python scripts/same_records.py compare A B [--ignore KEY ...]

The workload covers every stage on the bundled sample: training sweeps (several activations and seeds, the
deep CNN at two learning rates, the TorchScript exporter at opset 18), the pool-first rewrite, a profile on
ONNX Runtime and OpenVINO at fp32 and int8, reports, ``swap`` on a real architecture from the ``onnx``
package, ``optimize``, ``microbench`` and ``diff``. Each revision runs with its own empty cache
(``XDG_CACHE_HOME`` inside OUT), so nothing is shared between the two.

``compare`` requires every ONNX file to be byte-identical and every JSON record to be equal once the values
that are timings or timestamps (and the sentences and verdict words computed from them) are blanked.
``--ignore KEY`` also blanks a key everywhere (a field a change removed on purpose, say).
``--without-node-metadata`` compares ONNX files with every node's metadata cleared (the dynamo exporter writes
the Python class and source file of each node there: a module that moves changes it, nothing else), and then
blanks the files' hashes and sizes in the records. Exit 0: the same.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))

import reference  # noqa: E402  (benchmarks/reference.py: worktrees of other revisions)

# Keys whose values are timings, timestamps or derived from them: blanked before comparing.
VOLATILE = frozenset(
    {
        "created",
        "actprof_commit",  # the revision itself: what a comparison of two revisions differs in by design
        "profile_created",
        "train_seconds",
        "images_per_second",
        "seconds",
        "resolution_seconds",
        "export_seconds",
        "stats",
        "vs_baseline_ms",
        "as_trained_ms",
        "relu_swap_ms",
        "identity_ms",
        "activation_cost_ms",
        "penalty_vs_relu_ms",
        "us_per_run",
        "share",
        "total_us_per_run",
        "activation_us_per_run",
        "activation_share",
        "layout_us_per_run",
        "runs",
        "rss_added_bytes",
        "p50_ms",
        "p99_ms",
        "gbps",
        "fraction_of_copy",
        "summary",
        "call",
        "train_seconds_saved",
        "baseline_train_seconds",
        "break_even_batch1",
        "break_even_largest",
        "break_even_batch1_range",
        "ms_lost_per_image_batch1",
        "ms_lost_per_batch",
        "latency_within_noise",
        "training",
        "train_resolution_s",
        "seconds_to_target",
    }
)


def normalized(value, ignore: frozenset[str]):
    """``value`` with every volatile entry replaced by "*" (a latency ratio's interval included; a paired
    comparison or an estimate of seconds, named by its ``what`` or key, as a whole)."""
    if isinstance(value, dict):
        if "seconds" in str(value.get("what", "")):
            return "*"
        out = {}
        for key, item in value.items():
            if key in ignore:  # removed on purpose: compared as absent on both sides
                continue
            volatile = key in VOLATILE or "seconds" in key
            if key == "vs_baseline" and isinstance(item, dict) and "value" in item:  # a latency ratio
                volatile = True
            if key == "nodes" and "us_per_run" in value:  # kernel events per run, counted over a timed window
                volatile = True
            if key == "ops" and "total_us_per_run" in value:  # which layers a runtime's counters saw run (OpenVINO's
                volatile = True  # vary run to run); what each runtime fused is compared in the census

            out[key] = "*" if volatile else normalized(item, ignore)
        return out
    if isinstance(value, list):
        return [normalized(v, ignore) for v in value]
    return value


def light_model(name: str) -> Path:
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{name}.onnx"


def workload(out: Path) -> list[list[str]]:
    models, deep, ts = out / "models", out / "models-deep", out / "models-ts"
    quick = "--min-time 0.02 --min-runs 5"
    commands = [
        f"train-export --act relu,elu,gelu,selu,prelu,softplus,mish,leaky_relu --dataset sample --seeds 2 "
        f"--rewrite pool-first --out {models}",
        f"train-export --act relu,elu --model deep --lr 1e-3,3e-3 --dataset sample --out {deep}",
        f"train-export --act relu,gelu --dataset sample --exporter torchscript --opset 18 --out {ts}",
        f"profile --models {models} --provider cpu,openvino --precision fp32,int8 --batch-sizes 1,8 --dataset sample "
        f"--out {out / 'profile'} {quick}",
        f"report --models {models} --results {out / 'profile'} --out {out / 'profile'}",
        f"report --models {deep} --results {out / 'none'} --out {out / 'report-deep'}",
        f"swap {light_model('squeezenet')} --to relu,elu,gelu --out {out / 'swap'} {quick}",
        f"optimize {models / 'elu.onnx'} --out {out / 'optimized' / 'elu+pool-first.onnx'}",
        f"microbench --act relu,elu --sizes 4096 --min-time 0.02 --out {out / 'microbench'}",
        f"diff {out / 'profile'} {out / 'profile'}",
    ]
    if " " in str(out) + str(light_model("squeezenet")):
        raise SystemExit(f"the workload splits its commands on spaces: use an output path without one ({out})")
    return [command.split() for command in commands]


def capture(out: Path, revision: str | None) -> None:
    out = out.resolve()
    tree = reference.checkout(revision) if revision else reference.ROOT
    env = {**os.environ, "PYTHONPATH": str(tree), "XDG_CACHE_HOME": str(out / "cache"), "ACTPROF_OFFLINE": "1"}
    for key in ("ACTPROF_KERNEL_DIR", "ACTPROF_GRAPH_DIR", "ACTPROF_CACHE_DIR", "ACTPROF_DATA_DIR"):
        env.pop(key, None)
    log = []
    for args in workload(out):
        print("actprof", " ".join(args), flush=True)
        done = subprocess.run(
            [sys.executable, "-P", "-m", "actprof", *args], env=env, capture_output=True, text=True, cwd=tree
        )
        log.append({"args": args, "code": done.returncode, "stdout": done.stdout, "stderr": done.stderr})
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
            raise SystemExit(f"failed: actprof {' '.join(args)} (exit {done.returncode})")
    (out / "commands.json").write_text(json.dumps(log, indent=1))


def files(root: Path) -> dict[str, Path]:
    skip = {"cache", "commands.json"}
    return {
        str(p.relative_to(root)): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] not in skip and p.suffix in (".onnx", ".json")
    }


def without_node_metadata(data: bytes) -> bytes:
    import onnx

    model = onnx.load_from_string(data)
    for node in model.graph.node:
        del node.metadata_props[:]
    return model.SerializeToString()


def compare(a: Path, b: Path, ignore: frozenset[str], *, node_metadata: bool = True) -> int:
    left, right = files(a), files(b)
    problems = [f"only in {a}: {name}" for name in sorted(left.keys() - right.keys())]
    problems += [f"only in {b}: {name}" for name in sorted(right.keys() - left.keys())]
    for name in sorted(left.keys() & right.keys()):
        x, y = left[name].read_bytes(), right[name].read_bytes()
        if name.endswith(".onnx"):
            if x != y and (node_metadata or without_node_metadata(x) != without_node_metadata(y)):
                problems.append(f"{name}: the ONNX bytes differ")
            continue
        nx, ny = normalized(json.loads(x), ignore), normalized(json.loads(y), ignore)
        if nx != ny:
            problems.append(f"{name}: {first_difference(nx, ny)}")
    compared = len(left.keys() & right.keys())
    onnx_files = sum(n.endswith(".onnx") for n in left.keys() & right.keys())
    for problem in problems:
        print(problem)
    verdict = "the same" if not problems else f"{len(problems)} difference(s)"
    how = "byte for byte" if node_metadata else "byte for byte once node metadata is cleared"
    print(f"{compared} files compared ({onnx_files} ONNX {how}, {compared - onnx_files} JSON records): {verdict}")
    return 0 if not problems else 1


def first_difference(x, y, where: str = "") -> str:
    if isinstance(x, dict) and isinstance(y, dict):
        for key in sorted(x.keys() | y.keys()):
            if x.get(key, "<missing>") != y.get(key, "<missing>"):
                return first_difference(x.get(key, "<missing>"), y.get(key, "<missing>"), f"{where}.{key}")
    if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            if u != v:
                return first_difference(u, v, f"{where}[{i}]")
    return f"{where or '.'}: {str(x)[:120]} != {str(y)[:120]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("capture")
    run.add_argument("out", type=Path)
    run.add_argument("--rev", default=None, help="a git revision (default: this working tree)")
    check = commands.add_parser("compare")
    check.add_argument("a", type=Path)
    check.add_argument("b", type=Path)
    check.add_argument("--ignore", action="append", default=[])
    check.add_argument("--without-node-metadata", action="store_true")
    args = parser.parse_args()
    if args.command == "capture":
        capture(args.out, args.rev)
    else:
        ignore = frozenset(args.ignore) | (
            {"sha256", "size_bytes", "model_sha256"} if args.without_node_metadata else set()
        )
        raise SystemExit(compare(args.a, args.b, ignore, node_metadata=not args.without_node_metadata))


if __name__ == "__main__":
    main()
