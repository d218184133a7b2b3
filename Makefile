# The two set-up commands: `make demo` and `make test`. Each builds .venv from pinned versions.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# DDS never leaves this machine; MuJoCo renders offscreen through EGL (Mesa when there is no GPU).
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/config/fastdds_local.xml
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo test lint clean
setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt setup.py
	bash scripts/install_system_deps.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(PY) -m pip install --quiet -c constraints.txt -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/wm-ros demo --out demo_out

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(STAMP) lint
	$(PY) -m pytest -n 2 --dist loadfile --durations=15

clean:
	rm -rf $(VENV) build install log demo_out *.egg-info
