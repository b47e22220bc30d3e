#!/usr/bin/env bash
# benchmarks/deep_epochs.py on a lent GPU machine, which has Python 3.12 with torch,
# numpy, scipy, pandas and scikit-learn but not all of recsdk's needs, and cannot reach
# a package registry (docs/benchmarks.md, "Deep plugins: seconds per epoch, CPU and GPU").
#
#   bash benchmarks/deep_epochs_gpu.sh prepare [DATA]   # here: wheels and data into
#                                                       # .whl/ and .data/ (git-ignored)
#   bash benchmarks/deep_epochs_gpu.sh run [EPOCHS]     # there, carrying .whl and .data
#
# `run` installs the wheels into /tmp/site, makes plugins/ importable as recsdk_plugins
# (what installing recsdk would do) and measures every deep plugin on the GPU, then on
# the machine's CPU cores, in one call.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS="marshmallow==4.4.0 sqlalchemy==2.1.9 tenacity==9.2.1 itsdangerous==2.2.0"

case "${1:-}" in
  prepare)
    data="${2:-../shared/data/ml-100k}"
    [ -f "$data/ml-100k.inter" ] || { echo "$data: no ml-100k.inter there" >&2; exit 2; }
    exclude="$(git rev-parse --git-path info/exclude)"
    mkdir -p "$(dirname "$exclude")"
    for path in /.whl/ /.data/; do
      grep -qxF "$path" "$exclude" 2>/dev/null || echo "$path" >> "$exclude"
    done
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d .whl $WHEELS
    rm -rf .data/ml-100k && mkdir -p .data && cp -r "$data" .data/ml-100k
    du -sh .whl .data
    ;;
  run)
    epochs="${2:-5}"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
    mkdir -p /tmp/shim && ln -sfn "$PWD/plugins" /tmp/shim/recsdk_plugins
    export PYTHONPATH="/tmp/site:/tmp/shim:$PWD" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    python3 benchmarks/deep_epochs.py --data .data/ml-100k --device cuda --epochs "$epochs" \
      --threads "$(nproc)"
    python3 benchmarks/deep_epochs.py --data .data/ml-100k --device cpu --epochs "$epochs" \
      --threads "$(nproc)"
    ;;
  *)
    echo "usage: $0 prepare [DATA] | run [EPOCHS]" >&2
    exit 2
    ;;
esac
