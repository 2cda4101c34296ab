#!/usr/bin/env bash
# IBQ tokenizer training with 262144 codes, as the official scripts/train_tokenizer/IBQ/run_262144.sh:
# arguments MASTER_ADDR MASTER_PORT NODE_RANK (see train.sh for the environment variables).
exec "$(dirname "$0")/train.sh" 262144 "$@"
