# LayerLab: `make app` launches the app, `make test` runs the whole test suite.
# Both create .venv and install everything on first use (torch pinned by constraints.txt).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.layerlab-installed
PORT   ?= 8501

.PHONY: app test fuzz install lint bench frontend clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,mlflow]"
	touch $(STAMP)

install: $(STAMP)

app: $(STAMP)
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) --server.headless true

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile --timeout 900

# nightly-style: the graph fuzzer and the malformed-file corpus with fresh random examples (profile `fuzz`)
fuzz: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider --hypothesis-profile fuzz --hypothesis-show-statistics \
		tests/test_fuzz_graphs.py tests/test_escape.py tests/test_malformed_files.py

lint: $(STAMP)
	$(BIN)/ruff check builder pages tests bench app.py

bench: $(STAMP)
	$(BIN)/python bench/bench_core.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_explain.py

frontend:
	npm --prefix frontend ci && npm --prefix frontend run build

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis test-artifacts
