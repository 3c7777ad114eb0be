# vla-dojo: `make demo`, `make test`, `make bench` set everything up themselves, idempotently.
#
# A second run reinstalls nothing: Debian packages are checked with dpkg first, and the venv
# install is keyed on a stamp that is newer than pyproject.toml.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
VPY         := $(VENV)/bin/python
STAMP       := $(VENV)/.stamp-install
APT_PACKAGES := libusb-1.0-0 libosmesa6 libegl-mesa0 libgl1 ffmpeg
# Python 3.12, found without help: python3.12 on PATH (pyenv shims honour .python-version),
# else pyenv's own install of any 3.12.x.
PYTHON ?= $(shell command -v python3.12 2>/dev/null || ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null | sort -V | tail -n 1)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Rendering without a screen; the twin turns shadows and multisampling off itself.
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export PYTHONUNBUFFERED := 1

.PHONY: help setup system-deps demo test test-fast bench lint clean

help:
	@echo "make demo   record scripted pick-and-place episodes in the MuJoCo twin through the ROS 2 graph"
	@echo "make test   run the test suite (unit, fake hardware, integration)"
	@echo "make bench  run the benchmarks; tables on stdout, JSON in bench/results/"
	@echo "make lint   ruff"

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VPY):
	@if [ -z "$(PYTHON)" ]; then echo "Python 3.12 not found (tried python3.12 and ~/.pyenv/versions/3.12*)"; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip setuptools wheel

# After an install, flush the gigabytes pip just wrote: otherwise the first tests that write
# (the episode store) are throttled by the kernel's dirty-page writeback for minutes.
$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e ".[dev,models,hardware]"
	sync
	@touch $@

setup: system-deps $(STAMP)

demo: setup
	$(VENV)/bin/dojo demo

test: setup
	$(VPY) -m pytest -q

test-fast: setup
	$(VPY) -m pytest -q -m "not integration"

bench: setup
	$(VPY) bench/sim.py
	$(VPY) bench/control_loop.py
	$(VPY) bench/transport.py
	$(VPY) bench/recording.py
	$(VPY) bench/recording_kill.py
	$(VPY) bench/policy_learning.py
	$(VPY) bench/policy_head.py
	$(VPY) bench/policy_latency.py
	$(VPY) bench/rtc_prefix.py
	$(VPY) bench/critic.py
	$(VPY) bench/camera_pipeline.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
