#!/usr/bin/env bash
# Issue 24's GPU measurements in one run that fits 8 minutes of a lent GPU, in the repo root:
#   bash benchmarks/gpu_session.sh [OUT_DIR]
# 1. the card, torch and the packages found;
# 2. python -m benchmarks.cuda_check (CP vs the reference on the GPU, the search exact, also
#    with TF32 allowed, CUDA graphs vs eager, autocast, torch.export, SyncBatchNorm);
# 3. the op-count rows and the GPU rows: CP vs NonLocal3d in float32 and under bfloat16 AMP,
#    eager (R18 res3/res4, R50 res4, the paper's R101 pairing) then compiled (R50 res4 and
#    the pairing), and the training steps (CPNet-R101 vs NL C2D-R101 vs C2D-R101, CPNet-R50
#    vs NL C2D-R50) when mmaction2 imports.
# The GPU machines have torch and timm but not mmaction2's stack: benchmarks/gpu_wheels.sh
# fetches its wheels into .whl/ beforehand (carry .whl), installed here under /tmp/site.
# cp_plugin keeps mmaction2 importable beside those machines' transformers 5 (cp_plugin.mmaction.compat).
# Each step has its own time limit, so one slow step cannot starve the rest.
set -u
cd "$(dirname "$0")/.."
out=${1:-work_dirs/gpu_session}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

step() {  # step NAME SECONDS COMMAND...: run, keep its output in $out/NAME.txt, say how it ended
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start))s"
}

step machine 30 bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv;
    python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__,
    torch.cuda.get_device_name())";
    python3 -m pip list 2>/dev/null | grep -i -E "^(timm|mmaction2|mmengine|mmcv-lite|transformers) "'
step cuda_check 140 python3 -m benchmarks.cuda_check
step dispatch 30 python3 -m benchmarks --groups dispatch --device cuda --out-dir "$out/dispatch"
step gpu 150 python3 -m benchmarks --groups gpu --device cuda --repeats 10 --out-dir "$out/gpu"
step gpu_compiled 120 python3 -m benchmarks --groups gpu_compiled --device cuda --repeats 10 \
    --out-dir "$out/gpu_compiled"
