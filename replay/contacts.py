"""Which contacts in the twin are collisions: the arm with itself, or with the table.

Why by bodies and not by geom names: every preset's MJCF names its geoms differently; what is
common is the scene (``robot.sim.scene``): the robot is one subtree attached under the world,
the table is the body ``table`` and the ground the geom ``floor``. A contact between two geoms
of the robot's subtree is a self-collision, one between the robot and the table or floor a
table contact; contacts with the task's cubes and bin are the task's business. Contacts
present with the arm at its home pose (links that always touch) are not counted.

Touching is not colliding. The *hand* (the body that carries the end-effector site and the
bodies below it: the jaws) is the part of the arm designed to touch the world, and a
tabletop pick brings its jaws onto the table: while a jaw closes on a cube resting there, its
tip rides on the table top, a fraction of a millimetre deep in the twin and at a few newtons
(the arm's lag, its weight and the grip squeezing against the cube). A hand-table contact is
therefore judged by why it happened (``replay.report``): it is a collision when the *command*
drove the hand into the table (the commanded pose puts the same body deeper than
``command_depth`` into it: the policy or operator sent the arm through the table), or when it
pressed harder than the arm's weight explains (a normal force, from ``mj_contactForce``,
above ``contact_force`` times the weight of the arm's moving links, for at least
``contact_duration``: an impact or a push, not a rest). Every other link touching the table,
and any self-contact, is a collision at any depth: those links are not meant to touch.
Depth alone cannot tell a grasp from a collision: the table stops both within a millimetre.
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
    ``bodies`` the two bodies' names, ``depth`` the penetration (m, the deepest of the pair's
    contacts), ``force`` the pair's total normal force (N; NaN from a kinematic check, which
    has no forces), ``hand`` whether it is a table contact of the hand (see the module
    docstring)."""

    what: str
    bodies: tuple[str, str]
    depth: float
    force: float = float("nan")
    hand: bool = False


class CollisionClassifier:
    """Classifies ``MjData`` contacts of one twin model into self and table contacts."""

    def __init__(self, model: mujoco.MjModel, ee_site: str, min_depth: float) -> None:
        self.model = model
        self.min_depth = float(min_depth)
        site = model.site(ee_site).id
        hand_body = int(model.site_bodyid[site])
        top = root_body(model, hand_body)
        robot_root = int(model.body_rootid[top])
        body_of = model.geom_bodyid
        robot_bodies = model.body_rootid == robot_root
        self._robot = robot_bodies[body_of]  # per geom
        hand = np.zeros(model.nbody, bool)
        for b in range(model.nbody):  # the hand's body and every body below it
            k = b
            while k > 0 and k != hand_body:
                k = int(model.body_parentid[k])
            hand[b] = k == hand_body
        self._hand = hand[body_of]
        table_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "table")
        floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
        self._table = body_of == table_body
        if floor >= 0:
            self._table[floor] = True
        moving = robot_bodies & (model.body_weldid != 0)
        self.weight = float(np.sum(model.body_mass[moving]) * np.linalg.norm(model.opt.gravity))
        """N: the weight of the arm's moving links (what the arm resting on the table loads
        it with, at most)."""
        self._ignored: set[tuple[int, int]] = set()
        self._force = np.zeros(6)

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

    def collisions(self, data: mujoco.MjData, *, forces: bool = False) -> list[Contact]:
        """The self and table contacts in ``data``'s contacts, one per body pair: the deepest
        depth and, with ``forces`` (``data`` after a physics step), the summed normal force."""
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
        deepest: dict[tuple[int, int], float] = {}
        force: dict[tuple[int, int], float] = {}
        kind: dict[tuple[int, int], tuple[str, bool]] = {}
        m = self.model
        for k in np.flatnonzero(hit):
            a, b = (int(m.geom_bodyid[g]) for g in geoms[k])
            key = (min(a, b), max(a, b))
            if key in self._ignored:
                continue
            if self_hit[k]:
                kind[key] = (SELF, False)
            else:
                robot_geom = geoms[k][0] if robot[k, 0] else geoms[k][1]
                kind[key] = (TABLE, bool(self._hand[robot_geom]))
            deepest[key] = max(deepest.get(key, -np.inf), float(depth[k]))
            if forces:
                mujoco.mj_contactForce(m, data, int(k), self._force)
                force[key] = force.get(key, 0.0) + float(self._force[0])
        return [
            Contact(
                kind[key][0],
                (m.body(key[0]).name, m.body(key[1]).name),
                deepest[key],
                force.get(key, float("nan")),
                kind[key][1],
            )
            for key in deepest
        ]


class RecordedStateChecker:
    """Contacts of joint states (recorded or commanded), in a kinematic copy of the twin's
    model: what a real arm's own recording says it touched, whatever the twin's physics does,
    and where its commands would have put it."""

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
