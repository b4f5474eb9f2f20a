# The single entry point of the course. Fresh machine: `make lab` to take the course, `make test` to test it.
# Both set up the virtual environment first if needed (`make setup`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# The environment's own tools first (nbgrader runs alembic by name), as if the venv were activated.
export PATH := $(abspath $(BIN)):$(PATH)
# Which world the course runs on: auto (GPT-2 when Hugging Face can be reached, else the offline
# toy world), gpt2, toy or random. `make lab WORLD=toy`.
WORLD ?= auto
NOTEBOOK ?= notebooks/latent_gradients_exercises.ipynb

.PHONY: help setup lab test test-fast lint notebooks check-notebooks clean
## help: list these commands
help:
	@awk '/^## [a-z0-9-]+:/ { sub(/^## /, ""); name = $$1; sub(/^[^:]*: */, ""); printf "  make %-16s %s\n", substr(name, 1, length(name) - 1), $$0 }' $(MAKEFILE_LIST)

## setup: create the virtual environment .venv with every dependency (the other commands run it first)
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch pulled in by a dependency is a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,workshop]"
	touch $@

# JupyterLab as the course runs it (jupyter_lab_config.py): on this machine only, nothing fetched from
# the network, nbgrader's Validate button on. It opens $(NOTEBOOK) in your web browser.
## lab: open the course notebook in JupyterLab (WORLD=auto|gpt2|toy|random, NOTEBOOK=...)
lab: setup
	@test -f "$(NOTEBOOK)" || { echo "No notebook $(NOTEBOOK): run \`make notebooks\` or pass NOTEBOOK=..."; exit 1; }
	@echo ""
	@echo "Opening $(NOTEBOOK) in JupyterLab, on the '$(WORLD)' world."
	@echo "  - Your web browser opens on the notebook. If it does not, copy the http://127.0.0.1:... link"
	@echo "    printed below (with its token) into your browser."
	@echo "  - Run a cell with Shift+Enter; Run > Run All Cells runs them all. The first cell says which world loaded."
	@echo "  - Save with Ctrl+S (Cmd+S on a Mac). Validate (notebook toolbar) runs every check in a fresh kernel."
	@echo "  - To stop: close the browser tab, then press Ctrl+C twice here."
	@echo ""
	LATENT_GRADIENTS_WORLD=$(WORLD) $(BIN)/jupyter lab --config=jupyter_lab_config.py \
		--ServerApp.root_dir="$(CURDIR)" --LabApp.default_url="/lab/tree/$(NOTEBOOK)" \
		$(if $(filter 0,$(shell id -u)),--allow-root)

## test: the whole test suite, what CI runs
test: setup
	$(PY) -m pytest

## test-fast: the fast tier: unit tests, the learner checks on the tiny random world, the catalogue's core
# The tiers are pytest markers (pyproject.toml): this leaves out the tests marked slow, and runs the rest
# on every core (pytest-xdist).
test-fast: setup
	$(PY) -m pytest -m "not slow" -n auto

## lint: ruff, configured in pyproject.toml (which rules, and why), then the prose rules (scripts/check_prose.py)
lint: setup
	$(BIN)/ruff check .
	$(PY) scripts/check_prose.py

## notebooks: generate the learner, solutions and nbgrader notebooks from notebooks/source/
notebooks: setup
	$(PY) notebooks/build.py

## check-notebooks: fail, naming them, when a generated notebook differs from its source
check-notebooks: setup
	$(PY) notebooks/build.py --check

## clean: remove .venv, build/ and pytest's cache
clean:
	rm -rf $(VENV) .pytest_cache build

# ---- Grading with nbgrader (docs/instructor.md): each target is a command of `python -m grading`. ----
# The GRADING_ environment variables (docs/settings.md) override the limits in grading/grader/settings.py.
JOBS ?= 1
COURSE_DIR ?= $(or $(GRADING_COURSE_DIR),nbgrader)
GRADING := $(PY) -m grading
.PHONY: release autograde feedback grades
## release: generate the student version in nbgrader/release/ and the hidden tests' secret
release: setup notebooks
	$(GRADING) release --course "$(COURSE_DIR)"

## autograde: grade every submission in nbgrader/submitted/, JOBS=N at a time
autograde: setup
	$(GRADING) autograde --course "$(COURSE_DIR)" --jobs $(JOBS)

## feedback: one HTML feedback file per student in nbgrader/feedback/
feedback: setup
	$(GRADING) feedback --course "$(COURSE_DIR)"

## grades: grades.csv, scores.csv and the class summary in nbgrader/reports/
grades: setup
	$(GRADING) grades --course "$(COURSE_DIR)"

.PHONY: verify-gpt2
## verify-gpt2: with internet, run the course on real GPT-2 and compare every GPT-2 figure the notebook quotes
verify-gpt2: setup
	$(PY) scripts/verify_gpt2.py

.PHONY: bench
## bench: the reference solutions against the straightforward formulation, into build/bench.md (BENCH_ARGS=...)
bench: setup
	$(PY) scripts/bench.py --output build/bench.md $(BENCH_ARGS)

.PHONY: device-check
## device-check: on an NVIDIA GPU, the checks, catalogues, GPU tolerance and bench on CUDA, into build/device_check.md
device-check: setup
	$(PY) scripts/device_check.py

# ---- A workshop: JupyterHub for the class, nbgrader's exchange (docs/workshop.md). ----
# As root: `sudo make workshop` (ROSTER, WORKSHOP_DIR, WORKSHOP_PORT, WORLD=toy|gpt2; PUBLIC=1 with
# TLS_CERT=... TLS_KEY=... serves the class on every interface over HTTPS). Ctrl+C stops the hub and every server,
# then undoes what workshop-stop undoes.
ROSTER ?= workshop/roster.csv
WORKSHOP_DIR ?= /srv/latent-gradients-workshop
WORKSHOP_PORT ?= 8000
LEARNER_WORLD := $(if $(filter auto,$(WORLD)),toy,$(WORLD))
CHP := workshop/node_modules/.bin/configurable-http-proxy
.PHONY: workshop
$(CHP): workshop/package.json workshop/package-lock.json
	npm ci --prefix workshop --no-audit --no-fund
	touch $@

## workshop: as root, JupyterHub for a class on this machine (ROSTER, WORKSHOP_DIR, WORKSHOP_PORT, WORLD, PUBLIC=1)
workshop: setup $(CHP)
	$(PY) workshop/prepare.py --roster "$(ROSTER)" --workshop-dir "$(WORKSHOP_DIR)" --world $(LEARNER_WORLD)
	trap : INT TERM; WORKSHOP_DIR="$(WORKSHOP_DIR)" WORKSHOP_ROSTER="$(abspath $(ROSTER))" WORKSHOP_PORT=$(WORKSHOP_PORT) \
		LATENT_GRADIENTS_WORLD=$(LEARNER_WORLD) WORKSHOP_PUBLIC=$(PUBLIC) WORKSHOP_TLS_CERT="$(TLS_CERT)" WORKSHOP_TLS_KEY="$(TLS_KEY)" \
		$(BIN)/jupyterhub -f workshop/jupyterhub_config.py; status=$$?; \
		$(PY) workshop/prepare.py --stop --roster "$(ROSTER)" --workshop-dir "$(WORKSHOP_DIR)"; exit $$status

.PHONY: workshop-stop
## workshop-stop: as root, after the hub: remove the grading kernels' sudoers rule, give the repository its modes back
workshop-stop:
	$(PY) workshop/prepare.py --stop --roster "$(ROSTER)" --workshop-dir "$(WORKSHOP_DIR)"

# ---- Submissions from an LMS (docs/instructor.md): `make zip-collect ZIP=submissions.zip`, then autograde, feedback, grades. ----
# After `make release`. LMS=canvas (default) or moodle; another LMS: LMS_FILE_NAMES='<regular expression on each
# file's path, with (?P<student_id>...) and (?P<file_id>...)>'.
LMS ?= canvas
.PHONY: zip-collect
## zip-collect: file an LMS's zip of submissions under nbgrader/submitted/ (ZIP=..., LMS=canvas|moodle)
zip-collect: setup
	@test -f "$(ZIP)" || { echo "Usage: make zip-collect ZIP=path/to/submissions.zip [LMS=canvas|moodle]"; exit 1; }
	$(GRADING) collect "$(ZIP)" --course "$(COURSE_DIR)" $(if $(LMS_FILE_NAMES),--file-names '$(LMS_FILE_NAMES)',--lms $(LMS))
