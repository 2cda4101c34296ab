# Sourced by the training scripts (scripts/train_tokenizer/IBQ/train.sh, scripts/train_ar/IBQ/run.sh): reads
# MASTER_ADDR MASTER_PORT NODE_RANK from the arguments (the rest stays in ARGS), picks DEVICE (cuda when nvidia-smi
# lists GPUs, else cpu) and defines `launch SUBCOMMAND FLAGS...`, which runs `ibq launch` with the torchrun
# environment. Paths stay relative to the caller's working directory (data in, checkpoints out); only the package's
# own files (bin/ibq.js, configs/) are taken from the package.
IBQ_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MASTER_ADDR=${1:-localhost}
MASTER_PORT=${2:-$DEFAULT_MASTER_PORT}
NODE_RANK=${3:-0}
shift $(( $# < 3 ? $# : 3 ))
ARGS=("$@")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-6}
if [[ -z "${DEVICE:-}" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then DEVICE=cuda; else DEVICE=cpu; fi
fi
echo "MASTER_ADDR=$MASTER_ADDR MASTER_PORT=$MASTER_PORT NODE_RANK=$NODE_RANK NNODES=${NNODES:-1} NPROC_PER_NODE=${NPROC_PER_NODE:-1} DEVICE=$DEVICE (outputs under $(pwd))"
launch() {
  exec node "$IBQ_ROOT/bin/ibq.js" launch --nproc-per-node "${NPROC_PER_NODE:-1}" --nnodes "${NNODES:-1}" --node-rank "$NODE_RANK" \
    --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" --dist-timeout "${DIST_TIMEOUT:-60}" -- "$@"
}
