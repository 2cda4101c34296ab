#!/usr/bin/env bash
# AR (class-conditional Llama) training, the counterpart of scripts/train_tokenizer/IBQ/run_*.sh: arguments
# MASTER_ADDR MASTER_PORT NODE_RANK, then any extra `ibq train-ar` flags (e.g. --resume, --batch-size 32).
# Runs data-parallel through `ibq launch`. Environment: CONFIG (AR YAML or preset B/L/XL/XXL, default configs/IBQ/gpu/imagenet_cond_llama_B.yaml), TOKENIZER
# (tokenizer checkpoint, default checkpoints/ibq_16384/last.ckpt) with DATA (ImageNet train root, default
# ../data/imagenet/train) or TOKENS (pre-computed tokens .safetensors instead), OUT (default runs/ar), NNODES,
# NPROC_PER_NODE, DEVICE, DIST_TIMEOUT as in scripts/train_tokenizer/IBQ/train.sh. Relative paths are the caller's.
set -euo pipefail
DEFAULT_MASTER_PORT=10056
source "$(dirname "$0")/../../launch_common.sh"
if [[ -n "${TOKENS:-}" ]]; then
  INPUT=(--tokens "$TOKENS")
else
  INPUT=(--tokenizer "${TOKENIZER:-checkpoints/ibq_16384/last.ckpt}" --data "${DATA:-../data/imagenet/train}")
fi
launch train-ar --config "${CONFIG:-$IBQ_ROOT/configs/IBQ/gpu/imagenet_cond_llama_B.yaml}" --device "$DEVICE" "${INPUT[@]}" --out "${OUT:-runs/ar}" "${ARGS[@]}"
