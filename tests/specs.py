"""Robot specs for storage tests and benchmarks, where no arm moves.

The limits are wide but valid (RobotSpec refuses a robot without limits): nothing built from
these specs is ever sent to an arm.
"""

from __future__ import annotations

from collections.abc import Sequence

from robot.schema import RobotSpec


def storage_spec(
    name: str,
    joints: Sequence[str],
    cameras: Sequence[tuple[str, int, int]],
    control_hz: float,
) -> RobotSpec:
    """A ``len(joints)``-joint spec with ``cameras`` given as ``(name, width, height)``."""
    d = len(joints)
    return RobotSpec.from_mapping(
        {
            "name": name,
            "joint_names": list(joints),
            "limits": {
                "position_lower": [-3.0] * d,
                "position_upper": [3.0] * d,
                "velocity": [2.0] * d,
                "acceleration": [10.0] * d,
                "max_step": [0.1] * d,
            },
            "home": [0.0] * d,
            "workspace": {"lower": [-1, -1, -1], "upper": [1, 1, 1]},
            "control_hz": control_hz,
            "cameras": [{"name": n, "width": w, "height": h} for n, w, h in cameras],
        }
    )
