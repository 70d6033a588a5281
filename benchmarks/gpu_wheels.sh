#!/usr/bin/env bash
# Fetch, here, the pure-Python wheels the GPU machines lack (mmaction2's stack), into .whl/
# (git-ignored), for their Python 3.12. benchmarks/gpu_session.sh installs them there.
# Versions: requirements/lock.txt's.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    -d .whl mmengine==0.10.7 mmcv-lite==2.1.0 mmaction2==1.2.0 addict==2.4.0 yapf==0.43.0 \
    termcolor==3.3.0 importlib_metadata==10.2.0 zipp==4.1.2 platformdirs==4.14.8
ls .whl
