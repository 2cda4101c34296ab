#!/usr/bin/env bash
# IBQ tokenizer training, codebook size SIZE (configs/IBQ/gpu/imagenet_ibqgan_SIZE.yaml), shared by the official-style
# run_16384.sh and run_262144.sh: arguments SIZE MASTER_ADDR MASTER_PORT NODE_RANK, then any extra
# `ibq train-tokenizer` flags (e.g. --resume). Runs data-parallel through `ibq launch` (torchrun environment).
# Environment: NNODES (default 1), NPROC_PER_NODE (processes on this node, one per GPU; default 1), DEVICE (cpu or
# cuda; default cuda when nvidia-smi lists GPUs), DIST_TIMEOUT (seconds, default 60), DATA (ImageNet root with
# train/<wnid>/*.JPEG, default ../data/imagenet), OUT (default checkpoints/ibq_SIZE; with several nodes it must be
# a folder every node sees, or at least node 0's), LPIPS_VGG16 / LPIPS_LIN (torchvision vgg16 .pth and LPIPS vgg.pth
# lin layers). NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME / NCCL_DEBUG pass through to the ranks.
set -euo pipefail
SIZE=${1:?codebook size}
shift
MASTER_ADDR=${1:-localhost}
MASTER_PORT=${2:-10055}
NODE_RANK=${3:-0}
shift $(( $# < 3 ? $# : 3 ))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-6}
cd "$(dirname "$0")/../../.."
if [[ -z "${DEVICE:-}" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then DEVICE=cuda; else DEVICE=cpu; fi
fi
echo "MASTER_ADDR=$MASTER_ADDR MASTER_PORT=$MASTER_PORT NODE_RANK=$NODE_RANK NNODES=${NNODES:-1} NPROC_PER_NODE=${NPROC_PER_NODE:-1} DEVICE=$DEVICE"
LPIPS_ARGS=()
if [[ -n "${LPIPS_VGG16:-}" ]]; then LPIPS_ARGS=(--lpips-vgg16 "$LPIPS_VGG16" --lpips-lin "${LPIPS_LIN:?set LPIPS_LIN too}"); fi
exec node bin/ibq.js launch --nproc-per-node "${NPROC_PER_NODE:-1}" --nnodes "${NNODES:-1}" --node-rank "$NODE_RANK" \
  --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" --dist-timeout "${DIST_TIMEOUT:-60}" -- \
  train-tokenizer --config configs/IBQ/gpu/imagenet_ibqgan_${SIZE}.yaml --device "$DEVICE" \
  --data "${DATA:-../data/imagenet}" --out "${OUT:-checkpoints/ibq_${SIZE}}" "${LPIPS_ARGS[@]}" "$@"
