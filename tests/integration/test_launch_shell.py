"""``ros2 launch vla_dojo dojo.launch.py`` from a shell, as the lab engineer types it: the package
is found through the ament index, bad input is refused before any node starts, and one episode
runs to a clean end with every process finishing cleanly and the driver deactivated first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HOW_TO = (
    "`ros2 launch` is not installed: source a ROS 2 install (Jazzy or Kilted), or run "
    "`make test`, which installs the launch wheels from ../shared/ros2-launch/wheels into .venv"
)
ROS2 = shutil.which("ros2") or str(Path(sys.executable).with_name("ros2"))
if not Path(ROS2).exists():
    pytest.skip(HOW_TO, allow_module_level=True)

pytestmark = pytest.mark.integration


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([sys.prefix, *prefixes])  # README's line
    env["ROS_LOG_DIR"] = str(tmp_path / "ros_log")
    env.setdefault("MUJOCO_GL", "egl")
    return env


def _installed() -> None:
    share = Path(sys.prefix) / "share" / "vla_dojo" / "launch" / "dojo.launch.py"
    assert share.exists(), (
        f"{share} is missing: `make setup` installs it (launch/link-into-prefix.sh {sys.prefix})"
    )


def _launch(tmp_path, *arguments: str, timeout: float) -> subprocess.CompletedProcess:
    _installed()
    try:
        return subprocess.run(
            [ROS2, "launch", "vla_dojo", "dojo.launch.py", *arguments],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as err:
        output = (err.stdout or b"").decode() + (err.stderr or b"").decode()
        raise AssertionError(f"ros2 launch ran past {timeout} s:\n{output[-4000:]}") from None


def test_bad_input_is_refused_before_any_node_starts(tmp_path):
    """The other bad inputs take the same path (``tests/dojo/test_graph_launch.py``)."""
    proc = _launch(tmp_path, "robto:=so101", f"out:={tmp_path / 'run'}", timeout=90)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "launch argument 'robto:='" in output and "did you mean 'robot'" in output, output
    assert "process started" not in output, "no node may start on bad input"


def test_one_episode_from_a_shell_ends_cleanly(tmp_path, domain_id):
    out = tmp_path / "run"
    proc = _launch(
        tmp_path,
        f"domain_id:={domain_id}",
        f"out:={out}",
        "overrides:=episodes=1 sim.clock=lockstep",
        timeout=240,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for node in ("robot_driver", "scripted_operator", "episode_runner"):
        assert f"[{node}-" in output and "process started" in output
        assert f"[INFO] [{node}-" in output, output[-4000:]
    finished = [line for line in output.splitlines() if "process has finished cleanly" in line]
    assert len(finished) == 3, output[-6000:]
    assert "robot_driver deactivated before shutdown: True" in output
    assert (out / "episodes.json").exists()
