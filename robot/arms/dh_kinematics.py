"""Forward kinematics from Denavit-Hartenberg tables, for arms without an MJCF in the venv.

``SafetyLimits`` needs the end-effector position for its workspace box. The SO-101 and the
Panda/FR3 use the twin's MuJoCo models (``robot.mjcf.ForwardKinematics``); UR and xArm
models are not installed (mujoco-menagerie only downloads), so their published standard DH
parameters are used instead: flange position in the base frame, in m. A preset names one as
``model: dh:ur5e``. Values: UR's "DH parameters for calculations of kinematics and dynamics",
UFACTORY's "Kinematic and dynamic parameters of xArm".
"""

from __future__ import annotations

import numpy as np

from robot.schema import RobotSpec

# (d, a, alpha, theta_offset) per joint, standard DH.
DH: dict[str, list[tuple[float, float, float, float]]] = {
    "ur5e": [
        (0.1625, 0.0, np.pi / 2, 0.0),
        (0.0, -0.425, 0.0, 0.0),
        (0.0, -0.3922, 0.0, 0.0),
        (0.1333, 0.0, np.pi / 2, 0.0),
        (0.0997, 0.0, -np.pi / 2, 0.0),
        (0.0996, 0.0, 0.0, 0.0),
    ],
    "ur5": [
        (0.089159, 0.0, np.pi / 2, 0.0),
        (0.0, -0.425, 0.0, 0.0),
        (0.0, -0.39225, 0.0, 0.0),
        (0.10915, 0.0, np.pi / 2, 0.0),
        (0.09465, 0.0, -np.pi / 2, 0.0),
        (0.0823, 0.0, 0.0, 0.0),
    ],
    "xarm6": [
        (0.267, 0.0, -np.pi / 2, 0.0),
        (0.0, 0.28948866, 0.0, -1.3849179),
        (0.0, 0.0775, -np.pi / 2, 1.3849179),
        (0.3425, 0.0, np.pi / 2, 0.0),
        (0.0, 0.076, -np.pi / 2, 0.0),
        (0.097, 0.0, 0.0, 0.0),
    ],
}


class DHKinematics:
    """Flange position ``(3,)`` (m, base frame) of ``spec``'s arm joints (gripper skipped)."""

    def __init__(self, spec: RobotSpec, name: str) -> None:
        if name not in DH:
            raise ValueError(f"robot '{spec.name}': no DH table {name!r} (have {sorted(DH)})")
        self.table = np.asarray(DH[name], dtype=np.float64)
        self.columns = np.array(
            [i for i, j in enumerate(spec.joint_names) if j != spec.gripper_joint]
        )
        if self.columns.size != len(self.table):
            raise ValueError(
                f"robot '{spec.name}': DH table {name!r} has {len(self.table)} joints, the spec "
                f"{self.columns.size} arm joints"
            )

    def __call__(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64).reshape(-1)[self.columns]
        t = np.eye(4)
        for (d, a, alpha, offset), qi in zip(self.table, q, strict=True):
            th = qi + offset
            ct, st, ca, sa = np.cos(th), np.sin(th), np.cos(alpha), np.sin(alpha)
            t = t @ np.array(
                [
                    [ct, -st * ca, st * sa, a * ct],
                    [st, ct * ca, -ct * sa, a * st],
                    [0.0, sa, ca, d],
                    [0.0, 0.0, 0.0, 1.0],
                ]
            )
        return t[:3, 3].copy()


def forward_kinematics(spec: RobotSpec, model: str):
    """FK for a preset's ``model``: ``dh:<name>`` here, anything else the MuJoCo model."""
    if model.startswith("dh:"):
        return DHKinematics(spec, model[3:])
    from robot.mjcf import ForwardKinematics

    return ForwardKinematics.for_robot(spec, model)
