#!/usr/bin/env bash
# IBQ tokenizer training, codebook 262144 (configs/IBQ/gpu/imagenet_ibqgan_262144.yaml), as the official
# scripts/train_tokenizer/IBQ/run_262144.sh: arguments MASTER_ADDR MASTER_PORT NODE_RANK. Single node for now:
# they are exported for the coming multi-node trainer and otherwise unused.
# Environment: DATA (ImageNet root with train/<wnid>/*.JPEG, default ../data/imagenet), OUT (default
# checkpoints/ibq_262144), LPIPS_VGG16 / LPIPS_LIN (torchvision vgg16 .pth and LPIPS vgg.pth lin layers), and any
# extra `ibq train-tokenizer` flags after the three arguments (e.g. --resume checkpoints/ibq_262144/last.ckpt).
set -euo pipefail
export MASTER_ADDR=${1:-localhost}
export MASTER_PORT=${2:-10055}
export NODE_RANK=${3:-0}
shift $(( $# < 3 ? $# : 3 ))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-6}
cd "$(dirname "$0")/../../.."
echo "MASTER_ADDR=$MASTER_ADDR MASTER_PORT=$MASTER_PORT NODE_RANK=$NODE_RANK"
LPIPS_ARGS=()
if [[ -n "${LPIPS_VGG16:-}" ]]; then LPIPS_ARGS=(--lpips-vgg16 "$LPIPS_VGG16" --lpips-lin "${LPIPS_LIN:?set LPIPS_LIN too}"); fi
exec node bin/ibq.js train-tokenizer --config configs/IBQ/gpu/imagenet_ibqgan_262144.yaml \
  --data "${DATA:-../data/imagenet}" --out "${OUT:-checkpoints/ibq_262144}" "${LPIPS_ARGS[@]}" "$@"
