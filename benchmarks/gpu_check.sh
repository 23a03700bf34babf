#!/usr/bin/env bash
# The GPU check of issue 15, for a CUDA machine: `ragft compare` with --engine transformers and --engine vllm on
# the same questions (the vllm run reuses the adapter the first trained), a bf16 LoRA and a QLoRA run of a few
# steps, `ragft bench generation` on the shipped model and on a random-weight 1.1B Llama (benchmarks/random_model.py:
# no 1B+ weights are reachable offline; tokens/s does not depend on the weights' values), then the ratios: per-arm answer agreement, accuracy and p50 latency
# (benchmarks/generation.py engine_agreement), wall seconds of each compare, tokens/s of each engine.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--questions N] [--generator MODEL] [--steps N] [--work DIR]
#
# --dry-run prints the plan and runs nothing (works anywhere; tests/benchmarks/test_gpu_check.py runs it).
# Without a CUDA GPU (no nvidia-smi, or torch sees none) it says so and exits 3 before any work.
# Environments: PY (transformers runs, default .venv/bin/python) and VPY (vllm runs, default
# .venv-vllm/bin/python, from `make vllm VLLM_PKG=vllm TORCH_PIN=` on CUDA). QLoRA needs `pip install '.[qlora]'`.
set -euo pipefail

QUESTIONS=100
GENERATOR=smollm2-135m
STEPS=20
WORK=runs/gpu-check
DRY=0
PY=${PY:-.venv/bin/python}
VPY=${VPY:-.venv-vllm/bin/python}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --questions) QUESTIONS=$2; shift ;;
    --generator) GENERATOR=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    --work) WORK=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$QUESTIONS$STEPS" in *[!0-9]*) echo "gpu_check: --questions and --steps take whole numbers" >&2; exit 2 ;; esac

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Shared settings of both compares: the four default arms, no side checks, no history (the figures are here).
COMMON="--limit $QUESTIONS --generator $GENERATOR --max-steps $STEPS --fit-size 0 --general-size 0 --injection 0 --history off"

PLAN=(
  "transformers-compare|$PY -m cli.main compare $COMMON --device cuda --engine transformers --out $WORK/transformers"
  "vllm-compare|$VPY -m cli.main compare $COMMON --device cuda --engine vllm --dtype bfloat16 --adapter $WORK/transformers/adapter --out $WORK/vllm"
  "lora-bf16|$PY -m cli.main finetune --generator $GENERATOR --method lora --max-steps $STEPS --device cuda --out $WORK/lora"
  "qlora|$PY -m cli.main finetune --generator $GENERATOR --method qlora --max-steps $STEPS --device cuda --out $WORK/qlora"
  "bench-generation|$VPY -m cli.main bench generation --engines transformers,vllm --generator $GENERATOR --prompts 64 --device cuda --history off"
  "random-1b|$PY -m benchmarks.random_model $WORK/random-1b --size 1b --dtype bfloat16"
  "bench-generation-1b|$VPY -m cli.main bench generation --engines transformers,vllm --generator $WORK/random-1b --prompts 64 --device cuda --history off"
  "agreement|$PY -m benchmarks.generation $WORK/transformers $WORK/vllm"
)

if [ "$DRY" = 1 ]; then
  for step in "${PLAN[@]}"; do echo "${step%%|*}: ${step#*|}"; done
  exit 0
fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: no CUDA GPU here (nvidia-smi missing or torch sees none): nothing run" >&2
  exit 3
fi
mkdir -p "$WORK"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$WORK/gpu.txt"
for step in "${PLAN[@]}"; do
  name=${step%%|*}; cmd=${step#*|}
  echo "== $name: $cmd"
  start=$(date +%s.%N)
  $cmd 2>&1 | tee "$WORK/$name.log"
  end=$(date +%s.%N)
  echo "$name $(echo "$end - $start" | bc)" >> "$WORK/seconds.txt"
done
echo "== wall seconds"; cat "$WORK/seconds.txt"
tf=$(awk '$1=="transformers-compare"{print $2}' "$WORK/seconds.txt")
vl=$(awk '$1=="vllm-compare"{print $2}' "$WORK/seconds.txt")
echo "compare wall seconds, transformers / vllm = $(echo "scale=2; $tf / $vl" | bc)x (vllm's includes no training: it reuses the adapter)"
