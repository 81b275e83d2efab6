#!/usr/bin/env bash
# GPU check of ginmi on a CUDA machine (no network): throughput of the image network
# against FrEIA on the GPU (image: fp32 and bf16 subnets), the image step eager vs torch.compile
# (CUDA graphs) in fp32/TF32 and bf16 at batch 240 and 960 (issue 13's target: >= 40,000 samples/s),
# the whole `ginmi images` training loop and a whole `ginmi synthetic` run on the GPU (the 10-D net,
# torchrun over NCCL and the CPU tests were checked on an H200 before). FrEIA (pure Python) is taken
# from .devcarry/ when not installed.
# Usage: OUT=folder bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD/.devcarry" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PY:-python3}
nvidia-smi -L
$PY -c "import torch, numba, sklearn; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numba', numba.__version__)"
step() { echo "== $1"; shift; local t0=$SECONDS; timeout "$@"; echo "   rc=$? in $((SECONDS - t0)) s"; }
# the steps' limits add up to 570 s: one call within the device's 600 s per command
step "image net on the GPU vs FrEIA (fp32 and bf16 subnets, same device)" 150 \
  $PY benchmarks/bench_train.py image --rounds 2 --device cuda 2>&1 | tee "$OUT/bench_gpu.md"
step "image step on the GPU: eager vs torch.compile (reduce-overhead = CUDA graphs), fp32/TF32 and bf16" 240 \
  $PY benchmarks/bench_train.py compiled --device cuda 2>&1 | tee "$OUT/bench_gpu_compiled.md"
step "whole ginmi images training loop on the GPU (fp32, bf16) vs the reference loop" 120 \
  $PY benchmarks/bench_train.py loop --rounds 1 --device cuda 2>&1 | tee "$OUT/bench_gpu_loop.md"
step "ginmi synthetic on the GPU, 10 epochs" 60 \
  $PY -m ginmi synthetic --device cuda --epochs 10 --out "$OUT/synthetic" --no-progress --no-report 2>&1 | tail -4
python3 - "$OUT" <<'PY'
import json, sys
for run in ("synthetic",):
    try:
        r = json.load(open(f"{sys.argv[1]}/{run}/results.json"))
        print(run, r["environment"].get("device"), r["timing"], "mcc", r["mcc"])
    except Exception as err:
        print(run, "no results:", err)
PY
rm -rf "$OUT/synthetic"
