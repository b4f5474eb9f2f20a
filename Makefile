# The single entry point of the course. Fresh machine: `make lab` to take the course, `make test` to test it.
# Both set up the virtual environment first if needed (`make setup`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Which world the course runs on: auto (GPT-2 when Hugging Face can be reached, else the offline
# toy world), gpt2, toy or random. `make lab WORLD=toy`.
WORLD ?= auto
NOTEBOOK ?= notebooks/latent_gradients_exercises.ipynb

.PHONY: setup lab test notebooks check-notebooks clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch pulled in by a dependency is a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

lab: setup
	LATENT_GRADIENTS_WORLD=$(WORLD) $(BIN)/jupyter lab $(NOTEBOOK)

test: setup
	$(PY) -m pytest

notebooks: setup
	$(PY) notebooks/build.py

check-notebooks: setup
	$(PY) notebooks/build.py --check

clean:
	rm -rf $(VENV) .pytest_cache build
