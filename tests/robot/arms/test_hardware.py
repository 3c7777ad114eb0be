"""Opt-in: the configured robot on the bench. Connects, reads, checks limits; never enables.

pytest -m hardware tests/robot/arms/test_hardware.py --robot so101 --port /dev/ttyACM0
"""

from __future__ import annotations

import io

import pytest

pytestmark = pytest.mark.hardware


@pytest.fixture
def overrides(request) -> list[str]:
    robot = request.config.getoption("--robot")
    if not robot:
        pytest.skip("no --robot given")
    out = [f"robot={robot}"]
    if request.config.getoption("--port"):
        out.append(f"robot.device.port={request.config.getoption('--port')}")
    if request.config.getoption("--robot-id"):
        out.append(f"robot.device.id={request.config.getoption('--robot-id')}")
    if request.config.getoption("--host"):
        out.append(f"robot.device.host={request.config.getoption('--host')}")
    return out


def test_robot_connects_reads_and_its_limits_fit_the_device(overrides):
    from dojo import hw

    out = io.StringIO()
    code = hw.check(overrides, out)
    assert code == 0, out.getvalue()


def test_robot_state_is_fresh_and_inside_the_configured_limits(overrides):
    import numpy as np
    from omegaconf import OmegaConf

    from dojo import conf
    from robot.arms.registry import make_arm

    cfg = conf.load(overrides)
    spec = conf.robot_spec(cfg)
    arm = make_arm(spec, cfg.robot.driver, OmegaConf.to_container(cfg.robot.device))
    try:
        arm.connect()
        a, b = arm.read(), arm.read()
        assert b.stamp >= a.stamp
        assert np.all(b.position >= spec.position_lower) and np.all(
            b.position <= spec.position_upper
        )
    finally:
        arm.close()
