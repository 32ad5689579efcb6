#!/usr/bin/env bash
# Create or refresh .venv with the toolkit, its test extras and a torch that fits the machine.
# Re-running is cheap: it reinstalls only when pyproject.toml changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate

stamp=.venv/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/setup.sh ]; then
  exit 0
fi

python -m pip install -q --upgrade pip
if python -c "import torch" 2>/dev/null; then
  echo "setup: keeping the installed torch $(python -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: GPU found, installing torch with CUDA (set TORCH_SPEC to choose a build)"
  python -m pip install -q "${TORCH_SPEC:-torch}"
else
  # No GPU: the CPU build. Off this machine, pip may need
  # PIP_EXTRA_INDEX_URL=<the PyTorch CPU wheel index> to find a CPU-only wheel.
  echo "setup: no GPU, installing the CPU build of torch"
  python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
python -m pip install -q -e ".[dev]"
touch "$stamp"
