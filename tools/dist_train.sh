#!/usr/bin/env bash
# Distributed training with torchrun and mmengine's pytorch launcher:
#   tools/dist_train.sh CONFIG NUM_PROCS [train.py flags]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node; PYTHON picks the
# interpreter. Without a GPU the processes use gloo on the CPU.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NUM_PROCS [tools/train.py flags]" >&2
    exit 2
fi
CONFIG=$1
NUM_PROCS=$2
shift 2
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NUM_PROCS" \
    "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "$@"
