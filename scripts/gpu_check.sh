#!/usr/bin/env bash
# The GPU path's check (issue 15 item 7), one command from the repository root:
#   scripts/gpu_check.sh            (PYTHON=... to use another interpreter than .venv/bin/python)
# 1. the CUDA tests (tests/daemon/test_models.py -k cuda: training on CUDA in bfloat16 and float32, the
#    batches gathered on the GPU against the CPU's, a CUDA checkpoint served on the CPU);
# 2. benchmarks/training_devices.py: the same models, windows and seed trained on the CPU and on CUDA
#    (bfloat16 autocast and float32), at batch 64 and 1024, in one table of windows/s, seconds per epoch
#    and the last epoch's losses. About 2 minutes on a 16-core machine with one GPU.
# Record the table in benchmarks/RESULTS.md ("Training on a GPU"). Without a CUDA device it says so and
# exits 1 at once; the CPU column alone is `benchmarks/training_devices.py --devices cpu`.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD/daemon:$PWD/client${PYTHONPATH:+:$PYTHONPATH}"  # this tree's code, wherever the venv points

"$python" -c 'import sys, torch
sys.exit(0 if torch.cuda.is_available() else f"gpu_check: torch {torch.__version__} sees no CUDA device; nothing checked")'
"$python" -m pytest tests/daemon/test_models.py -k cuda -q
"$python" benchmarks/training_devices.py --devices cpu,cuda --batch-sizes 64,1024
