"""The twin's dynamics override: a delayed target lands exactly ``delay`` later; gains and
damping go into the model; an unknown joint is refused."""

from __future__ import annotations

import numpy as np
import pytest

from replay.dynamics import with_dynamics
from robot.description import ActuatorDynamics
from robot.sim.config import TwinConfig, TwinError
from robot.sim.twin import Twin
from tests.sim_helpers import robot_spec


def test_a_delayed_target_reaches_the_servo_after_the_delay():
    spec = robot_spec("so101")
    delayed = with_dynamics(
        spec, {"elbow_flex": ActuatorDynamics(kp=30.0, damping=1.5, delay=0.03)}
    )
    with Twin(delayed, TwinConfig(render=False)) as twin:
        arm = twin.arm
        arm.connect()
        arm.enable()
        act = twin.model.actuator("elbow_flex").id
        assert twin.model.actuator_gainprm[act, 0] == 30.0
        target = spec.home + np.array([0, 0, 0.2, 0, 0, 0])
        arm.send(target)
        before = twin.data.ctrl[act]
        assert before == pytest.approx(spec.home[2])  # not yet: 15 physics steps away
        twin.step(0.02)  # 10 steps
        assert twin.data.ctrl[act] == pytest.approx(spec.home[2])
        twin.step(0.02)
        assert twin.data.ctrl[act] == pytest.approx(target[2])
        assert arm.commanded[2] == pytest.approx(target[2])


def test_an_override_of_a_joint_the_robot_lacks_is_refused():
    spec = with_dynamics(robot_spec("so101"), {"elbow": ActuatorDynamics(delay=0.01)})
    with pytest.raises(TwinError, match="elbow"):
        Twin(spec, TwinConfig(render=False))
