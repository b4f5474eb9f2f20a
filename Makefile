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

.PHONY: setup lab test test-fast lint notebooks check-notebooks clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch pulled in by a dependency is a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,workshop]"
	touch $@

# JupyterLab as the course runs it (jupyter_lab_config.py): on this machine only, nothing fetched from
# the network, nbgrader's Validate button on. It opens $(NOTEBOOK) in your web browser.
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

# Everything: what CI runs.
test: setup
	$(PY) -m pytest

# The fast tier: unit tests and the learner checks on the tiny random world.
# The tiers are pytest markers (pyproject.toml): this leaves out the tests marked slow.
test-fast: setup
	$(PY) -m pytest -m "not slow"

# ruff, configured in pyproject.toml (which rules, and why).
lint: setup
	$(BIN)/ruff check .

notebooks: setup
	$(PY) notebooks/build.py

check-notebooks: setup
	$(PY) notebooks/build.py --check

clean:
	rm -rf $(VENV) .pytest_cache build

# ---- Grading with nbgrader (docs/instructor.md). Run from the repository root. ----
# `make autograde JOBS=4` grades 4 submissions at a time; GRADING_WORLD, GRADING_CELL_TIMEOUT (s) and
# GRADING_MEMORY_GB (per kernel) override the limits in grading/grader/settings.py.
JOBS ?= 1
NBGRADER := cd nbgrader && ../$(PY) -m nbgrader
.PHONY: release autograde feedback grades
release: setup notebooks
	$(NBGRADER) db assignment add latent_gradients
	$(NBGRADER) generate_assignment latent_gradients --force
	$(PY) -m grading secret

autograde: setup
	$(PY) -m grading autograde --jobs $(JOBS)

feedback: setup
	$(PY) -m grading feedback

grades: setup
	$(PY) -m grading grades

# For a maintainer with internet: run the course on real GPT-2 and print every GPT-2 figure the notebook
# quotes next to what it measures (exit 1 if one that should reproduce does not). Fails fast offline.
.PHONY: verify-gpt2
verify-gpt2: setup
	$(PY) scripts/verify_gpt2.py

# The reference solutions against the straightforward formulation, on the small and the GPT-2-shaped
# world: times, peak memory, ratios (prints figures; not a test). `make bench BENCH_ARGS="--threads 1"`.
.PHONY: bench
bench: setup
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

# On a machine with an NVIDIA GPU: the learner checks and the catalogues on CUDA (TF32 off and on), the
# GPU tolerance they support, and the bench at GPT-2's shape on the GPU; figures in
# build/device_check.md. Without a GPU it says so and exits with status 2.
.PHONY: device-check
device-check: setup
	$(PY) scripts/device_check.py

# ---- A workshop: JupyterHub for the class, nbgrader's exchange (docs/workshop.md). ----
# As root: `sudo make workshop` (ROSTER, WORKSHOP_DIR, WORKSHOP_PORT, WORLD=toy|gpt2; PUBLIC=1 with
# TLS_CERT=... TLS_KEY=... serves the class on every interface over HTTPS). Ctrl+C stops the hub and every server.
ROSTER ?= workshop/roster.csv
WORKSHOP_DIR ?= /srv/latent-gradients-workshop
WORKSHOP_PORT ?= 8000
WORKSHOP_WORLD := $(if $(filter auto,$(WORLD)),toy,$(WORLD))
CHP := workshop/node_modules/.bin/configurable-http-proxy
.PHONY: workshop
$(CHP): workshop/package.json workshop/package-lock.json
	npm ci --prefix workshop --no-audit --no-fund
	touch $@

workshop: setup $(CHP)
	$(PY) workshop/prepare.py --roster "$(ROSTER)" --workshop-dir "$(WORKSHOP_DIR)" --world $(WORKSHOP_WORLD)
	LATENT_GRADIENTS_WORKSHOP_DIR="$(WORKSHOP_DIR)" WORKSHOP_ROSTER="$(abspath $(ROSTER))" WORKSHOP_PORT=$(WORKSHOP_PORT) \
		WORKSHOP_WORLD=$(WORKSHOP_WORLD) WORKSHOP_PUBLIC=$(PUBLIC) WORKSHOP_TLS_CERT="$(TLS_CERT)" WORKSHOP_TLS_KEY="$(TLS_KEY)" \
		$(BIN)/jupyterhub -f workshop/jupyterhub_config.py

# ---- Submissions from an LMS: `make zip-collect ZIP=submissions.zip`, then make autograde, feedback, grades. ----
# nbgrader's zip_collect unpacks the zip (after `make release`) and files each notebook under
# nbgrader/submitted/<student id>/latent_gradients/ by its name. LMS=canvas (default): Canvas's "Download
# Submissions" names, <lastfirst>_[LATE_]<user id>_<submission id>_latent_gradients[-<n>].ipynb, the student id is
# the Canvas user id. LMS=moodle: Moodle's "Download all submissions", <Full Name>_<participant id>_assignsubmission_file_/
# latent_gradients.ipynb. Another LMS: LMS_FILE_NAMES='<regular expression on the file's path, with
# (?P<student_id>...) and (?P<file_id>...)>'.
CANVAS_FILE_NAMES := .*/[^/_]+_(?:LATE_)?(?P<student_id>\d+)_\d+_(?P<file_id>[^/.]+?)(?:-\d+)?\.ipynb$$
MOODLE_FILE_NAMES := .*/[^/]+_(?P<student_id>\d+)_assignsubmission_file_/(?P<file_id>[^/]+)\.ipynb$$
LMS ?= canvas
LMS_FILE_NAMES ?= $(if $(filter moodle,$(LMS)),$(MOODLE_FILE_NAMES),$(CANVAS_FILE_NAMES))
COURSE_DIR ?= nbgrader
.PHONY: zip-collect
zip-collect: setup
	@test -f "$(ZIP)" || { echo "Usage: make zip-collect ZIP=path/to/submissions.zip [LMS=canvas|moodle]"; exit 1; }
	rm -rf "$(COURSE_DIR)/downloaded/latent_gradients/archive"
	mkdir -p "$(COURSE_DIR)/downloaded/latent_gradients/archive"
	cp "$(ZIP)" "$(COURSE_DIR)/downloaded/latent_gradients/archive/"
	cd "$(COURSE_DIR)" && $(abspath $(PY)) -m nbgrader zip_collect latent_gradients --force \
		'--FileNameCollectorPlugin.named_regexp=$(LMS_FILE_NAMES)'
