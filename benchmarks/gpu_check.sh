#!/usr/bin/env bash
# GPU check of ginmi on a CUDA machine (no network): throughput of the 10-D and image networks
# against FrEIA on the GPU (image: fp32 and bf16 subnets), the image step eager vs torch.compile
# (CUDA graphs) in fp32/TF32 and bf16 at batch 240 and 960 (issue 13's target: >= 40,000 samples/s),
# the whole `ginmi images` training loop, a whole `ginmi synthetic` run on the GPU, a torchrun
# (NCCL) launch, and the trainer's and precision tests. FrEIA (pure Python) is taken from .devcarry/ when not installed.
# Usage: OUT=folder bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD/.devcarry" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PY:-python3}
nvidia-smi -L
$PY -c "import torch, numba, sklearn; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numba', numba.__version__)"
step() { echo "== $1"; shift; local t0=$SECONDS; timeout "$@"; echo "   rc=$? in $((SECONDS - t0)) s"; }
step "throughput on the GPU (10-D and image nets vs FrEIA, same device)" 240 \
  $PY benchmarks/bench_train.py 10d image --rounds 2 --device cuda 2>&1 | tee "$OUT/bench_gpu.md"
step "image step on the GPU: eager vs torch.compile (reduce-overhead = CUDA graphs), fp32/TF32 and bf16" 300 \
  $PY benchmarks/bench_train.py compiled --device cuda 2>&1 | tee "$OUT/bench_gpu_compiled.md"
step "whole ginmi images training loop on the GPU (fp32, bf16) vs the reference loop" 150 \
  $PY benchmarks/bench_train.py loop --rounds 1 --device cuda 2>&1 | tee "$OUT/bench_gpu_loop.md"
step "ginmi synthetic on the GPU, 10 epochs" 90 \
  $PY -m ginmi synthetic --device cuda --epochs 10 --out "$OUT/synthetic" --no-progress --no-report 2>&1 | tail -4
step "torchrun, 1 process, NCCL" 90 \
  $PY -m torch.distributed.run --nproc-per-node 1 -m ginmi synthetic --device cuda --epochs 3 \
  --out "$OUT/ddp" --no-progress --no-report 2>&1 | tail -3
step "trainer tests (CPU paths, this machine's torch)" 120 \
  $PY -m pytest -q -x -p no:cacheprovider tests/test_fused.py tests/test_training.py tests/test_checkpoint.py tests/test_precision.py 2>&1 | tail -3
python3 - "$OUT" <<'PY'
import json, sys
for run in ("synthetic", "ddp"):
    try:
        r = json.load(open(f"{sys.argv[1]}/{run}/results.json"))
        print(run, r["environment"].get("device"), r["timing"], "mcc", r["mcc"])
    except Exception as err:
        print(run, "no results:", err)
PY
rm -rf "$OUT/synthetic" "$OUT/ddp"
