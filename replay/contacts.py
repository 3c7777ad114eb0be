"""Which contacts in the twin are collisions: the arm with itself, or with the table.

Why by bodies and not by geom names: every preset's MJCF names its geoms differently; what is
common is the scene (``robot.sim.scene``): the robot is one subtree attached under the world,
the table is the body ``table`` and the ground the geom ``floor``. A contact between two geoms
of the robot's subtree is a self-collision, one between the robot and the table or floor a
table collision; contacts with the task's cubes and bin are the task's business. Contacts
present with the arm at its home pose (links that always touch) are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from robot.mjcf import root_body

SELF = "self"
TABLE = "table"


@dataclass(frozen=True)
class Contact:
    """One colliding pair at one instant: ``what`` is :data:`SELF` or :data:`TABLE`,
    ``bodies`` the two bodies' names, ``depth`` the penetration (m)."""

    what: str
    bodies: tuple[str, str]
    depth: float


class CollisionClassifier:
    """Classifies ``MjData`` contacts of one twin model into self and table collisions."""

    def __init__(self, model: mujoco.MjModel, ee_site: str, min_depth: float) -> None:
        self.model = model
        self.min_depth = float(min_depth)
        site = model.site(ee_site).id
        top = root_body(model, int(model.site_bodyid[site]))
        robot_root = int(model.body_rootid[top])
        body_of = model.geom_bodyid
        self._robot = model.body_rootid[body_of] == robot_root  # per geom
        table_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "table")
        floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
        self._table = body_of == table_body
        if floor >= 0:
            self._table[floor] = True
        self._ignored: set[tuple[int, int]] = set()

    def ignore_current(self, data: mujoco.MjData) -> None:
        """Treat the body pairs in contact in ``data`` now (the home pose) as never colliding."""
        for c in self._pairs(data, 0.0):
            self._ignored.add(c)

    def _pairs(self, data: mujoco.MjData, min_depth: float) -> list[tuple[int, int]]:
        n = data.ncon
        if n == 0:
            return []
        geoms = data.contact.geom[:n]
        depth = -data.contact.dist[:n]
        robot = self._robot[geoms]
        table = self._table[geoms]
        hit = (
            (robot[:, 0] & robot[:, 1]) | (robot[:, 0] & table[:, 1]) | (table[:, 0] & robot[:, 1])
        )
        hit &= depth > min_depth
        bodies = self.model.geom_bodyid[geoms[hit]]
        return [(int(min(a, b)), int(max(a, b))) for a, b in bodies]

    def collisions(self, data: mujoco.MjData) -> list[Contact]:
        """The self and table collisions in ``data``'s contacts, deepest per body pair."""
        n = data.ncon
        if n == 0:
            return []
        geoms = data.contact.geom[:n]
        depth = -data.contact.dist[:n]
        robot = self._robot[geoms]
        table = self._table[geoms]
        self_hit = robot[:, 0] & robot[:, 1]
        table_hit = (robot[:, 0] & table[:, 1]) | (table[:, 0] & robot[:, 1])
        hit = (self_hit | table_hit) & (depth > self.min_depth)
        if not hit.any():
            return []
        best: dict[tuple[int, int], Contact] = {}
        m = self.model
        for k in np.flatnonzero(hit):
            a, b = (int(m.geom_bodyid[g]) for g in geoms[k])
            key = (min(a, b), max(a, b))
            if key in self._ignored:
                continue
            what = SELF if self_hit[k] else TABLE
            names = (m.body(key[0]).name, m.body(key[1]).name)
            if key not in best or depth[k] > best[key].depth:
                best[key] = Contact(what, names, float(depth[k]))
        return list(best.values())


class RecordedStateChecker:
    """Contacts of recorded joint states, in a kinematic copy of the twin's model: what a
    real arm's own recording says it touched, whatever the twin's physics does."""

    def __init__(self, twin, classifier: CollisionClassifier) -> None:
        self._twin = twin
        self._classifier = classifier
        self._data = mujoco.MjData(twin.model)
        self._data.qpos[:] = twin.data.qpos
        self._data.mocap_pos[:] = twin.data.mocap_pos
        self._data.mocap_quat[:] = twin.data.mocap_quat

    def collisions(self, position: np.ndarray) -> list[Contact]:
        m, d = self._twin.model, self._data
        self._twin.arm.write_positions(d, position)
        mujoco.mj_kinematics(m, d)
        mujoco.mj_collision(m, d)
        return self._classifier.collisions(d)
