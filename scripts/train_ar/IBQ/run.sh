#!/usr/bin/env bash
# AR (class-conditional Llama) training, the counterpart of scripts/train_tokenizer/IBQ/run_*.sh: arguments
# MASTER_ADDR MASTER_PORT NODE_RANK, then any extra `ibq train-ar` flags (e.g. --resume, --batch-size 32).
# Runs data-parallel through `ibq launch`. Environment: CONFIG (AR YAML or preset B/L/XL/XXL, default B), TOKENIZER
# (tokenizer checkpoint, default checkpoints/ibq_16384/last.ckpt) with DATA (ImageNet train root, default
# ../data/imagenet/train) or TOKENS (pre-computed tokens .safetensors instead), OUT (default runs/ar), NNODES,
# NPROC_PER_NODE, DEVICE, DIST_TIMEOUT as in scripts/train_tokenizer/IBQ/train.sh.
set -euo pipefail
MASTER_ADDR=${1:-localhost}
MASTER_PORT=${2:-10056}
NODE_RANK=${3:-0}
shift $(( $# < 3 ? $# : 3 ))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-6}
cd "$(dirname "$0")/../../.."
if [[ -z "${DEVICE:-}" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then DEVICE=cuda; else DEVICE=cpu; fi
fi
if [[ -n "${TOKENS:-}" ]]; then
  INPUT=(--tokens "$TOKENS")
else
  INPUT=(--tokenizer "${TOKENIZER:-checkpoints/ibq_16384/last.ckpt}" --data "${DATA:-../data/imagenet/train}")
fi
echo "MASTER_ADDR=$MASTER_ADDR MASTER_PORT=$MASTER_PORT NODE_RANK=$NODE_RANK NNODES=${NNODES:-1} NPROC_PER_NODE=${NPROC_PER_NODE:-1} DEVICE=$DEVICE"
exec node bin/ibq.js launch --nproc-per-node "${NPROC_PER_NODE:-1}" --nnodes "${NNODES:-1}" --node-rank "$NODE_RANK" \
  --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" --dist-timeout "${DIST_TIMEOUT:-60}" -- \
  train-ar --config "${CONFIG:-B}" --device "$DEVICE" "${INPUT[@]}" --out "${OUT:-runs/ar}" "$@"
