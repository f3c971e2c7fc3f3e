#!/usr/bin/env bash
# Produce reports/gpu/<gpu>/ on a machine with an NVIDIA GPU, one stage per call:
#
#   scripts/gpu_report.sh install DIR   onnxruntime-gpu from the wheel split into DIR/part* (its file name in
#                                       DIR/wheel-name) into /tmp/site: put /tmp/site first on PYTHONPATH
#   scripts/gpu_report.sh check         actprof env, and the GPU tests (tests/test_cuda.py, tests/test_profile.py)
#   scripts/gpu_report.sh train DATA    every activation, 1 epoch of full MNIST in DATA, trained on the GPU
#   scripts/gpu_report.sh profile       CPU and CUDA providers at batch 1, 64, 1024, with the ablation
#   scripts/gpu_report.sh graphs        the CUDA provider again with CUDA graphs; microbench; the reports
#
# Work goes to models/gpu/ and reports/gpu-run/ (both git-ignored); each stage also leaves
# $OUT/gpu-run.tar.gz (every file but the ONNX models) when $OUT is set, so nothing is lost between calls.
# Run from the project root, with actprof importable (PYTHONPATH=. works without installing it).
set -euo pipefail
export PYTHONUNBUFFERED=1
stage=${1:?stage: install, check, train, profile or graphs}
models=models/gpu
run=reports/gpu-run
mkdir -p "$models" "$run"
actprof() { python3 -m actprof "$@"; }

save() {
  [[ -n "${OUT:-}" ]] && tar czf "$OUT/gpu-run.tar.gz" --exclude='*.onnx' "$run" "$models"
  return 0
}
trap save EXIT

case "$stage" in
  install)
    parts=${2:?directory with the wheel parts}
    wheel=$(cat "$parts/wheel-name")
    cat "$parts"/part* > "$parts/$wheel"
    python3 -m pip install -q --no-index --no-deps --target /tmp/site "$parts/$wheel" "${@:3}"
    python3 -c "import onnxruntime as o; print(o.__version__, o.get_available_providers())"
    ;;
  check)
    actprof env 2>&1 | tee "$run/env.txt"
    nvidia-smi | tee "$run/nvidia-smi.txt"
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_profile.py 2>&1 | tee "$run/tests.log"
    ;;
  train)
    data=${2:?directory with full MNIST}
    actprof train-export --act all --device cuda --data-dir "$data" --dataset full --out "$models" 2>&1 \
      | tee "$run/train.log"
    ;;
  profile)
    actprof profile --models "$models" --provider all --batch-sizes 1,64,1024 --min-time 0.3 --out "$run" 2>&1 \
      | tee "$run/profile.log"
    ;;
  graphs)
    # Celu has no CUDA kernel: ORT runs it on the CPU between two copies, which a CUDA graph cannot capture.
    graph_acts=relu,leaky_relu,prelu,elu,selu,gelu,gelu_tanh,sigmoid,tanh,softplus,silu,mish,hardswish
    actprof profile --models "$models" --act "$graph_acts" --provider cuda --cuda-graph --batch-sizes 1,64,1024 \
      --min-time 0.3 --out "$run/cuda-graph" 2>&1 | tee "$run/cuda-graph.log"
    actprof microbench --provider all --out "$run" 2>&1 | tee "$run/microbench.log"
    actprof report --models "$models" --results "$run" --out "$run" 2>&1 | tee "$run/report.log"
    actprof report --models "$models" --results "$run/cuda-graph" --format md,json --out "$run/cuda-graph" 2>&1 \
      | tee -a "$run/report.log"
    ;;
  *)
    echo "unknown stage $stage" >&2
    exit 2
    ;;
esac
