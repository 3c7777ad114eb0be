# vla-dojo: `make demo`, `make test`, `make bench` set everything up themselves, idempotently.
#
# A second run reinstalls nothing: Debian packages are checked with dpkg first, and the venv
# install is keyed on a stamp that is newer than pyproject.toml.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
VPY         := $(VENV)/bin/python
STAMP       := $(VENV)/.stamp-install
APT_PACKAGES := libusb-1.0-0 libosmesa6 libegl1 libegl-mesa0 libgl1 ffmpeg
PIP_EXTRAS   := dev,models,hardware
# The workstation image (docker/Dockerfile) installs the same lists: it asks this Makefile for
# them (make print-apt-packages, make print-pip-extras), so the two cannot drift apart.
# ROS 2's launch packages: from a ROS install when one is there, else the wheels built from the
# upstream sources (no registry carries them; ../shared/ros2-launch/README.md).
ROS_LAUNCH_WHEELS ?= ../shared/ros2-launch/wheels
ROS_LAUNCH_DEPS := osrf-pycommon lark pyyaml argcomplete packaging psutil catkin-pkg ros-ament-index-python
# Python 3.12, found without help: python3.12 on PATH (pyenv shims honour .python-version),
# else pyenv's own install of any 3.12.x.
PYTHON ?= $(shell command -v python3.12 2>/dev/null || ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null | sort -V | tail -n 1)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Rendering without a screen; the twin turns shadows and multisampling off itself.
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export PYTHONUNBUFFERED := 1

.PHONY: help setup system-deps ros-launch demo test test-fast bench lint lint-docker clean \
	print-apt-packages print-pip-extras

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
	$(VPY) -m pip install -q --no-cache-dir --upgrade pip setuptools wheel

# After an install, flush the gigabytes pip just wrote: otherwise the first tests that write
# (the episode store) are throttled by the kernel's dirty-page writeback for minutes.
# --no-cache-dir: torch's CUDA wheels are several GB; kept in pip's cache as well they doubled
# the install's disk use, and a CI runner with little disk ran out of space in the install.
$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install -q --no-cache-dir -e ".[$(PIP_EXTRAS)]"
	sync
	@touch $@

# `ros2 launch vla_dojo ...` from the venv: the launch packages (unless a ROS install provides
# them), and the ament index entry, launch files and node shims linked into the venv (an
# editable install installs no data files).
ros-launch: $(STAMP)
	@if [ -d "$(ROS_LAUNCH_WHEELS)" ] && ! $(VPY) -c "import launch_ros, launch_testing, ros2launch" 2>/dev/null; then \
	  echo "installing the ROS 2 launch wheels from $(ROS_LAUNCH_WHEELS)"; \
	  $(VPY) -m pip install -q --no-cache-dir $(ROS_LAUNCH_DEPS) && \
	  $(VPY) -m pip install -q --no-cache-dir --no-deps $(ROS_LAUNCH_WHEELS)/*.whl; \
	fi
	@launch/link-into-prefix.sh $(VENV)

setup: system-deps $(STAMP) ros-launch

demo: setup
	$(VENV)/bin/dojo demo

test: setup lint-docker
	$(VPY) -m pytest -q

lint-docker: $(STAMP)
	$(VENV)/bin/hadolint docker/Dockerfile

print-apt-packages:
	@echo $(APT_PACKAGES)

print-pip-extras:
	@echo $(PIP_EXTRAS)

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
