# Two entry points for a fresh machine: `make demo` (the main job, offline tiny profile) and `make test`.
# Each creates the virtual environment it needs in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_RESULTS ?= results/demo

.PHONY: demo test env lint clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch/torchvision pinned to the builds that install from this machine's local files
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e ".[dev,ray]"
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/dreambench --results $(DEMO_RESULTS) run --method dreambooth --profile tiny \
		--subjects dog,backpack --steps 20
	HF_HUB_OFFLINE=1 $(BIN)/dreambench report $(DEMO_RESULTS)
	@echo "demo done: see $(DEMO_RESULTS)/ (tables/, report/index.html); random-init tiny models, not quality results"

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check dreambench tests

clean-demo:
	rm -rf $(DEMO_RESULTS)
