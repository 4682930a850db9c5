#!/usr/bin/env bash
# Create .venv and install advlegit with pinned CPU torch. Idempotent; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
# constraints.txt pins torch==2.13.0 (the CPU build on local disk); never loosen it.
.venv/bin/pip install -q -c constraints.txt -e ".[test]"
# torchattacks is only a test/benchmark oracle; its declared deps would pull torchvision (CUDA).
.venv/bin/pip install -q --no-deps torchattacks==3.5.1
echo "advlegit installed in .venv (activate with: source .venv/bin/activate)"
