#!/usr/bin/env bash
# Build .venv-verl (`make verl`): verl 0.9.1, torch 2.13.0 and the toolkit, apart from .venv
# because verl 0.9.1 pins transformers < 5.11 (the main venv has a newer one).
# Re-running is cheap: it reinstalls only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/../.."

python=${PYTHON:-python3}
venv=.venv-verl
stamp=$venv/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt integrations/verl/setup.sh ]; then
  exit 0
fi
start=$(date +%s)
[ -x $venv/bin/python ] || "$python" -m venv $venv
pip="$venv/bin/python -m pip"
$pip install -q --upgrade pip
# The exact spec takes the CPU wheel where one is on disk; a looser spec would make pip
# download a multi-GB CUDA build. A GPU user sets TORCH_SPEC to the build they want.
if ! $venv/bin/python -c "import torch" 2>/dev/null; then
  $pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
# verl imports cachetools, fastapi and uvicorn from verl.trainer.ppo.ray_trainer without declaring
# them (vLLM / SGLang bring them on a GPU install).
$pip install -q "verl==0.9.1" cachetools fastapi uvicorn
# The toolkit without its own pins (verl chose transformers, datasets, peft, accelerate), then the
# light dependencies verl does not bring.
$pip install -q --no-deps -e .
$pip install -q "sympy>=1.12" "matplotlib>=3.8" "tqdm>=4.66" "safetensors>=0.4" "tokenizers>=0.20" "pytest>=8"
$pip check
touch "$stamp"
echo "verl venv ready in $(( $(date +%s) - start )) s: $venv/bin/python -m pytest tests/test_verl_manager.py"
