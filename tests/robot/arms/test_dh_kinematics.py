"""DH forward kinematics against the manufacturers' published zero poses."""

from __future__ import annotations

import numpy as np
import pytest

from robot.arms.dh_kinematics import DHKinematics, forward_kinematics
from tests.robot.arms import test_ur, test_xarm


def test_ur5e_zero_pose_matches_universal_robots_dh_sheet():
    fk = DHKinematics(test_ur.spec(), "ur5e")
    np.testing.assert_allclose(fk(np.zeros(6)), [-0.8172, -0.2329, 0.0628], atol=1e-4)
    # shoulder_pan by +90 deg rotates the flange about z
    np.testing.assert_allclose(
        fk(np.r_[np.pi / 2, np.zeros(5)]), [0.2329, -0.8172, 0.0628], atol=1e-4
    )


def test_xarm6_zero_pose_matches_ufactory_manual():
    fk = forward_kinematics(test_xarm.spec(), "dh:xarm6")
    np.testing.assert_allclose(fk(np.zeros(6)), [0.207, 0.0, 0.112], atol=1e-4)


def test_unknown_table_is_named():
    with pytest.raises(ValueError, match="ur9"):
        DHKinematics(test_ur.spec(), "ur9")
