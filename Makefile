# Two entry points for a fresh machine: `make demo` (the main job, offline tiny profile) and `make test`.
# Each creates the virtual environment it needs in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_RESULTS ?= results/demo
# The demo's run options (the full protocol's 25 prompts x 4 images on two subjects).
DEMO_ARGS ?= --subjects dog,backpack --steps 20
# The CLI the demo calls (tests point it at another interpreter).
DREAMBENCH ?= $(BIN)/dreambench

.PHONY: demo test env lint clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch/torchvision: the versions the test suite runs with
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e ".[dev,ray]"
	touch $(STAMP)

env: $(STAMP)

# First the dataset: the one commands find ($DREAMBENCH_DATA, ../shared/dreambooth-dataset,
# ./dreambooth-dataset), else the official archive ($DREAMBENCH_DATA_URL overrides it) fetched into
# ./dreambooth-dataset and verified image by image (sha256).
demo: $(STAMP)
	$(DREAMBENCH) data fetch --if-missing
	HF_HUB_OFFLINE=1 $(DREAMBENCH) --results $(DEMO_RESULTS) run --method dreambooth --profile tiny $(DEMO_ARGS)
	HF_HUB_OFFLINE=1 $(DREAMBENCH) report $(DEMO_RESULTS)
	@echo "demo done: see $(DEMO_RESULTS)/ (tables/, report/index.html); random-init tiny models, not quality results"

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check dreambench tests

clean-demo:
	rm -rf $(DEMO_RESULTS)
