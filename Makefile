# LayerLab: `make app` launches the app, `make test` runs the whole test suite.
# Both create .venv and install everything on first use (torch pinned by constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.layerlab-installed
PORT   ?= 8501
# bash with pipefail: pip's output goes through a filter below and its exit status must still count
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

.PHONY: app test test-frontend fuzz install lint bench frontend screenshots docs clean

# The first `make app` installs everything (~4 min, ~3 GB, mostly PyTorch); each step says what it does.
# --no-compile: pip compiles what it installs one file at a time; compileall below does it on every core (~15 s less)
PIP := $(BIN)/python -m pip install -q --no-compile --disable-pip-version-check -c constraints.txt
# pip repeats "Location ... is ignored" for every package when the machine's pip.conf names an index folder that is
# not there; one such line per package hid the steps below, so those lines (only those) are dropped
QUIET_PIP := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
$(STAMP): pyproject.toml constraints.txt
	@echo "==> Setting up LayerLab in $(VENV) (first run only: about 4 minutes and 3 GB, mostly PyTorch)"
	@echo "==> [1/3] Creating the virtual environment $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] Installing PyTorch, the largest download (2-3 minutes)"
	@$(PIP) torch $(QUIET_PIP)
	@echo "==> [3/3] Installing LayerLab and the rest: Streamlit, ONNX, Captum, Optuna, MLflow, test tools"
	@$(PIP) -e ".[dev,mlflow,mlflow-server,docs,sequences,hf,cluster]" $(QUIET_PIP)
	@$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib > /dev/null || true  # a package's template files do not compile
	@touch $(STAMP)
	@echo "==> Installed. Later runs start at once."

install: $(STAMP)

app: $(STAMP)
	@echo "==> Starting LayerLab: open http://127.0.0.1:$(PORT) in your browser (Ctrl-C stops it)"
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) --server.headless true

# pytest's testpaths are tests/ and builder/ (the docstring examples run as doctests, see pyproject.toml)
# Where PYTHONDONTWRITEBYTECODE is set (CI's containers set it), no process caches what it compiles, so each of the
# suite's hundreds of cold processes (jobs, CLI runs, servers, workers) compiled LayerLab's modules again (~0.7 CPU-s
# each): compiled once here (a few CPU-seconds; timestamps keep it current), every process reads them.
test: $(STAMP) test-frontend
	@$(BIN)/python -m compileall -q -j 0 builder app_pages tests app.py > /dev/null
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --timeout 900 --durations=30

# Canvas reducers (vitest, a few seconds). Installs the frontend's locked deps on first use.
test-frontend:
	test -d frontend/node_modules || npm --prefix frontend ci --no-audit --no-fund
	cd frontend && npx --no-install vitest run

# The documentation site (mkdocs.yml, docs/) into site/, failing on any warning; tests/test_docs.py builds it too
# and runs every example in it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

# README screenshots (docs/screenshots/*.png) of every page at 1440x900 and 900x900; never run by the tests.
screenshots: $(STAMP)
	$(BIN)/python tests/e2e/screenshots.py

# nightly-style volume (profile `fuzz`, fresh random examples): the graph fuzzer and the malformed-file corpus
# whole (LAYERLAB_FUZZ_DEEP: each accepted graph also through ONNX, onnxruntime and the importer), then every other hypothesis test in tests/ (`-m hypothesis`: each @given test), which CI runs with
# 200 examples per property (a property slow per example: its own budget in CI, 25 times it here)
FUZZ_FILES = tests/graph/test_fuzz_graphs.py tests/test_escape.py tests/interchange/test_malformed_files.py
fuzz: $(STAMP)
	LAYERLAB_FUZZ_DEEP=1 $(BIN)/python -m pytest -p no:cacheprovider --hypothesis-profile fuzz --hypothesis-show-statistics $(FUZZ_FILES)
	$(BIN)/python -m pytest -p no:cacheprovider --hypothesis-profile fuzz --hypothesis-show-statistics \
		-m hypothesis $(addprefix --ignore=,$(FUZZ_FILES)) tests

lint: $(STAMP)
	$(BIN)/ruff check builder app_pages tests bench tools app.py
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/bench_core.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_explain.py

frontend:
	npm --prefix frontend ci && npm --prefix frontend run build

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis test-artifacts site
