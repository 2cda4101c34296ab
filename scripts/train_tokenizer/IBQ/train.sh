#!/usr/bin/env bash
# IBQ tokenizer training, codebook size SIZE (configs/IBQ/gpu/imagenet_ibqgan_SIZE.yaml), shared by the official-style
# run_16384.sh and run_262144.sh: arguments SIZE MASTER_ADDR MASTER_PORT NODE_RANK, then any extra
# `ibq train-tokenizer` flags (e.g. --resume). Runs data-parallel through `ibq launch` (torchrun environment).
# Environment: NNODES (default 1), NPROC_PER_NODE (processes on this node, one per GPU; default 1), DEVICE (cpu or
# cuda; default cuda when nvidia-smi lists GPUs), DIST_TIMEOUT (seconds, default 60), DATA (ImageNet root with
# train/<wnid>/*.JPEG, default ../data/imagenet), OUT (default checkpoints/ibq_SIZE; relative paths are taken from the
# caller's working directory, where the outputs go; with several nodes it must be
# a folder every node sees, or at least node 0's), LPIPS_VGG16 / LPIPS_LIN (torchvision vgg16 .pth and LPIPS vgg.pth
# lin layers). NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME / NCCL_DEBUG pass through to the ranks.
set -euo pipefail
SIZE=${1:?codebook size}
shift
DEFAULT_MASTER_PORT=10055
source "$(dirname "$0")/../../launch_common.sh"
LPIPS_ARGS=()
if [[ -n "${LPIPS_VGG16:-}" ]]; then LPIPS_ARGS=(--lpips-vgg16 "$LPIPS_VGG16" --lpips-lin "${LPIPS_LIN:?set LPIPS_LIN too}"); fi
launch train-tokenizer --config "$IBQ_ROOT/configs/IBQ/gpu/imagenet_ibqgan_${SIZE}.yaml" --device "$DEVICE" \
  --data "${DATA:-../data/imagenet}" --out "${OUT:-checkpoints/ibq_${SIZE}}" "${LPIPS_ARGS[@]}" "${ARGS[@]}"
