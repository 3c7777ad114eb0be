"""``dojo hw urdf``: the URDF the driver publishes, to a file, a folder or stdout; a robot
without an MJCF refused in one line."""

from __future__ import annotations

import io
import subprocess
import sys

from dojo import conf, hw
from robot.urdf import robot_urdf


def test_writes_the_drivers_urdf_to_a_file_or_a_folder(tmp_path):
    want = robot_urdf(conf.robot_spec(conf.load(["robot=sim_panda"])))
    report = io.StringIO()
    assert hw.urdf(["robot=sim_panda", f"out={tmp_path / 'arm.urdf'}"], out=report) == 0
    assert (tmp_path / "arm.urdf").read_text() == want
    assert "arm.urdf: URDF of robot=panda" in report.getvalue()
    assert hw.urdf(["robot=sim_panda", f"out={tmp_path}"], out=io.StringIO()) == 0
    assert (tmp_path / "panda.urdf").read_text() == want


def test_without_out_it_goes_to_stdout_from_the_command_line():
    proc = subprocess.run(
        [sys.executable, "-m", "dojo.cli", "hw", "urdf", "robot=so101"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == robot_urdf(conf.robot_spec(conf.load(["robot=so101"])))


def test_a_dh_robot_is_refused_in_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "dojo.cli", "hw", "urdf", "robot=ur5e"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "dh:ur5e" in proc.stderr
