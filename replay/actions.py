"""``mode=actions``: the twin driven by an episode's recorded actions, through the driver's path.

Why the driver's own objects: the question a replay answers is "what would this arm, with
this preset and this safety configuration, have done with these commands", so the recorded
actions go through the same :class:`robot.executor.ChunkExecutor`,
:class:`robot.safety.SafetyLimits` and :class:`robot.control.ControlLoop` as on the robot
(``robot/runtime.py``), ticked at the preset's control rate in sim time.

Timing: recorded step ``i`` (ROS time ``t[i]``) is due at ``start + t[i] - t[0]`` in the twin;
at each recorded step a chunk of the steps from it on (``WINDOW`` s) is submitted, stamped
with the tick, so the executor interpolates between recorded steps exactly as between a
policy's steps, and a recording at the control rate is commanded step for step. The arm starts
at the recorded initial joint state (position and velocity), the safety layer reset there.

Scene: the task's objects matter to the arm (a grasped cube stops the jaws). With
``scene=auto`` the episode's scene is reconstructed when it has images: the task seeds whose
instruction matches are rendered and the one whose first frame matches the recorded one is
used; otherwise (no images, real data, no match) the objects are moved out of reach and the
arm replays over an empty table (the report says which).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import mujoco
import numpy as np

from episodes.store import Episode
from replay.config import ReplayConfig, SceneMode
from replay.contacts import CollisionClassifier, Contact, RecordedStateChecker
from robot.control import ControlLoop
from robot.executor import ChunkExecutor, ExecutorConfig
from robot.mjcf import ForwardKinematics
from robot.safety import SafetyLimits
from robot.schema import ActionChunk, ControlSource

WINDOW = 0.5  # s of recorded steps in each submitted chunk
_ASIDE = 50.0  # m: where task objects go when the scene is not reconstructed


@dataclass
class Trace:
    """What one replay produced, per control tick ``k`` (times relative to the episode's first
    step): the twin's state at the tick, the command sent, whether safety held, and the
    safety events that changed the recorded command beyond ``clamp_tolerance``; the self and
    table contacts of the twin (with forces), of the recorded states and of the commanded
    poses (kinematic, ``replay.contacts``)."""

    t: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    command: np.ndarray
    held: np.ndarray
    clamped: np.ndarray
    safety_events: list[tuple[float, str]] = field(default_factory=list)
    twin_contacts: list[tuple[float, Contact]] = field(default_factory=list)
    recorded_contacts: list[tuple[float, Contact]] = field(default_factory=list)
    commanded_contacts: list[tuple[float, Contact]] = field(default_factory=list)
    weight: float = 0.0  # N, of the arm's moving links (replay.contacts)
    snapshots: list = field(default_factory=list)  # twin.snapshot() at recorded frame times
    scene: str = ""
    wall_s: float = 0.0

    def at(self, times: np.ndarray) -> np.ndarray:
        """The twin's joint positions at ``times`` (s from the episode's first step),
        ``(N, D)``, linear between ticks (exact on the tick grid)."""
        times = np.asarray(times, dtype=np.float64)
        return np.stack(
            [np.interp(times, self.t, self.position[:, j]) for j in range(self.position.shape[1])],
            axis=1,
        )


class ActionReplayer:
    """Replays episodes on one twin (reset per episode). Not thread-safe."""

    def __init__(self, twin, config: ReplayConfig, executor: ExecutorConfig | None = None) -> None:
        self.twin = twin
        self.spec = twin.spec
        self.config = config
        self.executor_config = executor or ExecutorConfig()
        self.fk = ForwardKinematics.for_robot(self.spec)
        self.classifier = CollisionClassifier(twin.model, self.spec.ee_site, config.contact_depth)
        self._home_contacts_known = False
        self._seeds: dict[str, int | None] = {}  # episode id -> its reconstructed scene's seed

    # -- scene --------------------------------------------------------------------------------

    def prepare_scene(self, episode: Episode) -> str:
        """Reset the twin to the episode's scene (see the module docstring); says which."""
        twin = self.twin
        if self.config.scene == SceneMode.auto and episode.images:
            if episode.id not in self._seeds:
                self._seeds[episode.id] = self._match_seed(episode)
            seed = self._seeds[episode.id]
            if seed is not None:
                twin.reset(seed=seed)
                return f"seed {seed}"
        twin.reset(seed=0)
        m, d = twin.model, twin.data
        for k, name in enumerate(twin.scene.cube_names):
            joint = m.joint(name)
            adr, dof = int(m.jnt_qposadr[joint.id]), int(m.jnt_dofadr[joint.id])
            d.qpos[adr : adr + 3] = (_ASIDE + k, _ASIDE, 0.0)
            d.qvel[dof : dof + 6] = 0.0
        bin_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "bin")
        if bin_body >= 0 and m.body_mocapid[bin_body] >= 0:
            d.mocap_pos[m.body_mocapid[bin_body]] = (-_ASIDE, _ASIDE, 0.0)
        mujoco.mj_forward(m, d)
        return "empty (objects out of reach)"

    def _match_seed(self, episode: Episode) -> int | None:
        """The task seed whose first frame best matches the episode's (mean abs pixel error
        under ``scene_match``), among seeds drawing the same instruction."""
        twin = self.twin
        if episode.task and episode.task != twin.task_config.name:
            return None
        cams = [c.name for c in self.spec.cameras if c.name in episode.images]
        if not cams:
            return None
        cam = cams[0]
        recorded = np.asarray(episode.images[cam][0], dtype=np.float32)
        size = recorded.shape[:2]
        best: tuple[float, int] | None = None
        for seed in range(self.config.scene_seeds):
            setup = twin.task.sample(seed)
            if setup.instruction != episode.instruction:
                continue
            twin.reset(seed=seed)
            twin.arm.place(episode.joint_pos[0])
            try:
                frame = twin.render(cam, size=size)
            except Exception:  # a size the camera cannot give: no reconstruction
                return None
            err = float(np.mean(np.abs(frame.astype(np.float32) - recorded)))
            if best is None or err < best[0]:
                best = (err, seed)
        if best is None or best[0] > self.config.scene_match:
            return None
        return best[1]

    # -- the replay ---------------------------------------------------------------------------

    def run(
        self,
        episode: Episode,
        *,
        snapshot_times: np.ndarray | None = None,
        check_recorded: bool = True,
    ) -> Trace:
        """Replay ``episode`` (already checked: ``replay.episodes.check_episode``).

        ``snapshot_times``: s from the first step at which to keep the twin's state (to render
        it beside the recorded frames). ``check_recorded``: also check every recorded joint
        state for collisions (off while fitting, where only tracking counts)."""
        cfg = self.config
        twin, spec = self.twin, self.spec
        wall0 = time.perf_counter()
        scene = self.prepare_scene(episode)
        arm = twin.arm
        if not arm.connected:
            arm.connect()
        if not arm.enabled:
            arm.enable()
        if not self._home_contacts_known:
            self._ignore_home_contacts()
        arm.place(episode.joint_pos[0], episode.joint_vel[0])
        checker = RecordedStateChecker(twin, self.classifier)
        executor = ChunkExecutor(spec, self.executor_config)
        safety = SafetyLimits(spec, self.fk)
        control = ControlLoop(arm, safety, executor)
        control.start()

        period = spec.control_period
        rel = np.asarray(episode.t, dtype=np.float64) - float(episode.t[0])
        actions = np.asarray(episode.action, dtype=np.float64)
        n_ticks = math.floor(rel[-1] / period + 1e-6) + 1
        d = spec.dof
        out = Trace(
            t=np.arange(n_ticks) * period,
            position=np.zeros((n_ticks, d)),
            velocity=np.zeros((n_ticks, d)),
            command=np.zeros((n_ticks, d)),
            held=np.zeros(n_ticks, bool),
            clamped=np.zeros(n_ticks, bool),
            scene=scene,
            weight=self.classifier.weight,
        )
        for i in range(len(rel) if check_recorded else 0):
            out.recorded_contacts += [
                (float(rel[i]), c) for c in checker.collisions(episode.joint_pos[i])
            ]
            out.commanded_contacts += [(float(rel[i]), c) for c in checker.collisions(actions[i])]
        snaps = list(snapshot_times) if snapshot_times is not None else []
        tol = cfg.clamp_tolerance
        submitted = -1  # the first step of the last chunk submitted
        eps = 1e-9
        for k in range(n_ticks):
            now = twin.time
            tk = k * period
            first = int(np.searchsorted(rel, tk - eps, side="left"))
            if first < len(rel) and first != submitted:
                last = int(np.searchsorted(rel, rel[first] + WINDOW, side="right"))
                chunk = ActionChunk(
                    stamp=now,
                    joint_names=spec.joint_names,
                    positions=actions[first:last],
                    times=np.maximum(rel[first:last] - tk, 0.0),
                    source=ControlSource.SCRIPT,
                )
                executor.submit(chunk, now)
                submitted = first
            tick = control.tick(now)
            out.position[k] = tick.state.position
            out.velocity[k] = tick.state.velocity
            out.command[k] = tick.command
            wanted = np.array([np.interp(tk, rel, actions[:, j]) for j in range(d)])
            if np.max(np.abs(tick.command - wanted)) > tol:
                out.held[k] = tick.held
                out.clamped[k] = not tick.held
                out.safety_events += [(tk, r) for r in tick.reasons]
            while snaps and snaps[0] <= tk + eps:
                snaps.pop(0)
                out.snapshots.append(twin.snapshot())
            twin.step(period)
            for c in self.classifier.collisions(twin.data, forces=True):
                out.twin_contacts.append((tk + period, c))
        control.stop()
        out.wall_s = time.perf_counter() - wall0
        return out

    def _ignore_home_contacts(self) -> None:
        twin = self.twin
        data = mujoco.MjData(twin.model)
        data.qpos[:] = twin.data.qpos
        twin.arm.write_positions(data, self.spec.home)
        mujoco.mj_kinematics(twin.model, data)
        mujoco.mj_collision(twin.model, data)
        self.classifier.ignore_current(data)
        self._home_contacts_known = True
