"""Stand-ins for real data: episodes recorded in a twin whose dynamics and safety differ.

Why: a replay is checked against episodes whose truth is known. The "real" arm here is the
twin with other servo gains, damping and a command delay (a preset override,
:class:`robot.description.ActuatorDynamics`), recorded by the scripted operator through the
same control path ``dojo collect`` uses (:class:`policy.rollout.TwinRollout`), at the control
rate. Injected events (:class:`Injection`) take the arm somewhere the nominal preset forbids:
into the table, past a joint limit, faster than a velocity limit; the recording's own safety
layer is widened just enough to let that happen, as a wrongly configured real robot would.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from episodes.store import EpisodeStore, StoreConfig
from policy.rollout import RolloutConfig, TwinRollout
from robot.description import ActuatorDynamics, TwinDescription
from robot.executor import ExecutorConfig
from robot.schema import ActionChunk, CameraSpec, ControlSource, Observation, RobotSpec
from robot.sim.config import TaskConfig, TwinConfig
from robot.sim.twin import Twin
from teleop.scripted import ScriptedOperator
from teleop.scripted_config import ScriptedConfig

INJECTIONS = ("table", "limit", "velocity")
SMALL_FRONT = CameraSpec("front", 64, 48, 50.0)
"""The camera stand-in episodes record: enough to reconstruct their scene, cheap to render."""


@dataclass(frozen=True)
class Injection:
    """Between ``at`` and ``at + duration`` (s from the episode's start) the arm is driven in
    joint space to ``target`` and back (the operator's plan is suspended), with the recording's
    safety widened: ``table`` lowers the workspace floor below the table, ``limit`` widens the
    limits of the joints ``target`` puts past them, ``velocity`` doubles the velocity limits
    (and gets there in a fifth of the time).

    ``via``: a pose passed on the way there and back (straight lines in joint space, each
    leg's share of the time in proportion to its largest joint move, each leg a smoothstep from
    rest to rest), so the arm can turn high over the task's objects before it goes down.
    ``ramp``: s to get there (and as long back); None: 0.6 of half the duration (a fifth of
    that for ``velocity``)."""

    kind: str
    target: tuple[float, ...]
    at: float = 1.0
    duration: float = 1.2
    via: tuple[float, ...] | None = None
    ramp: float | None = None


def with_dynamics(spec: RobotSpec, actuators: Mapping[str, ActuatorDynamics]) -> RobotSpec:
    """``spec`` whose twin has ``actuators`` (joint -> servo gain, damping, delay)."""
    twin = spec.twin or TwinDescription()
    return dataclasses.replace(spec, twin=dataclasses.replace(twin, actuators=dict(actuators)))


def perturbed(
    spec: RobotSpec,
    model_kp: float,
    model_damping: float,
    rng: np.random.Generator,
    *,
    gain: tuple[float, float] = (0.6, 1.6),
    damping: tuple[float, float] = (0.5, 2.0),
    delay: tuple[float, float] = (0.03, 0.06),
) -> dict[str, ActuatorDynamics]:
    """Random per-joint dynamics: gain and damping scaled within the ranges, one command delay
    for the whole arm (one bus) within ``delay``, on whole milliseconds."""
    bus = round(float(rng.uniform(*delay)), 3)
    return {
        name: ActuatorDynamics(
            kp=round(model_kp * float(rng.uniform(*gain)), 3),
            damping=round(model_damping * float(rng.uniform(*damping)), 4),
            delay=bus,
        )
        for name in spec.joint_names
    }


def recording_spec(spec: RobotSpec, injection: Injection | None, camera: CameraSpec | None):
    """The spec the "real" arm records with: ``spec``'s, the safety widened for
    ``injection``, and only ``camera`` (small frames keep recording cheap)."""
    changes: dict = {"cameras": (camera,) if camera is not None else ()}
    if injection is not None:
        target = np.asarray(injection.target, dtype=np.float64)
        if injection.kind == "table":
            lower = spec.workspace_lower.copy()
            lower[2] = -0.2
            changes["workspace_lower"] = lower
        elif injection.kind == "limit":
            changes["position_lower"] = np.minimum(spec.position_lower, target - 0.05)
            changes["position_upper"] = np.maximum(spec.position_upper, target + 0.05)
        elif injection.kind == "velocity":
            changes["velocity_limit"] = spec.velocity_limit * 2.5
            changes["acceleration_limit"] = spec.acceleration_limit * 4.0
            changes["max_step"] = spec.max_step * 2.5
        else:
            raise ValueError(f"injection kind {injection.kind!r}: one of {INJECTIONS}")
    return dataclasses.replace(spec, **changes)


class InjectingOperator:
    """The scripted operator as a chunk agent, with an optional :class:`Injection`."""

    def __init__(self, twin: Twin, config: ScriptedConfig, injection: Injection | None) -> None:
        self.twin = twin
        self.operator = ScriptedOperator(twin.spec, config)
        self.injection = injection
        self.seed: int | None = None
        self.chunk_dt = config.chunk_dt or twin.spec.control_period
        self._start = 0.0
        self._from: np.ndarray | None = None

    def reset(self) -> None:
        self.operator.reset(self.twin.instruction, seed=self.seed)
        self._start = self.twin.time
        self._from = None

    def predict(self, obs: Observation, instruction: str, committed=None) -> ActionChunk:
        inj = self.injection
        t = obs.stamp - self._start
        if inj is not None and inj.at <= t < inj.at + inj.duration:
            if self._from is None:
                self._from = self.twin.arm.commanded
            return self._excursion(obs.stamp, t)
        return self.operator.act(
            obs.stamp, obs.joint_pos, self.twin.objects(), self.twin.arm.commanded
        )

    def _excursion(self, stamp: float, t: float) -> ActionChunk:
        inj = self.injection
        assert inj is not None and self._from is not None
        path = [self._from]
        if inj.via is not None:
            path.append(np.asarray(inj.via, dtype=np.float64))
        path.append(np.asarray(inj.target, dtype=np.float64))
        legs = np.array([np.max(np.abs(b - a)) for a, b in itertools.pairwise(path)])
        ends = np.concatenate([[0.0], np.cumsum(legs) / max(legs.sum(), 1e-12)])
        half = inj.duration / 2
        ramp = inj.ramp or (half / 5 if inj.kind == "velocity" else half * 0.6)
        times = np.arange(1, 16) * self.chunk_dt
        s = t + times - inj.at
        w = np.clip(np.minimum(s, inj.duration - s) / ramp, 0.0, 1.0)
        positions = np.empty((len(w), len(self._from)))
        for i, wi in enumerate(w):
            leg = min(int(np.searchsorted(ends, wi, side="right")) - 1, len(legs) - 1)
            u = (wi - ends[leg]) / max(ends[leg + 1] - ends[leg], 1e-12)
            if len(legs) > 1:  # each leg starts and stops at rest: no velocity step at ``via``
                u = u * u * (3.0 - 2.0 * u)
            positions[i] = path[leg] + u * (path[leg + 1] - path[leg])
        return ActionChunk(
            stamp, self.twin.spec.joint_names, positions, times, ControlSource.SCRIPT
        )

    @property
    def done(self) -> bool:
        inj = self.injection
        if inj is not None and self.twin.time - self._start < inj.at + inj.duration:
            return False
        return self.operator.done


@dataclass
class Recorded:
    """What :func:`record` wrote: the episode ids, their seeds and successes."""

    ids: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    success: list[bool] = field(default_factory=list)


def record(
    store: EpisodeStore | str,
    spec: RobotSpec,
    task: TaskConfig,
    seeds: Sequence[int],
    *,
    actuators: Mapping[str, ActuatorDynamics] | None = None,
    injection: Injection | None = None,
    camera: CameraSpec | None = SMALL_FRONT,
    scripted: ScriptedConfig | None = None,
    max_duration: float | None = None,
) -> Recorded:
    """Record one scripted episode per seed into ``store`` (a store or a URL to create) with
    the "real" arm: ``spec`` with ``actuators`` and the safety ``injection`` needs, at the
    control rate, with the small ``camera`` only (None: no images)."""
    rec_spec = recording_spec(spec, injection, camera)
    if actuators:
        rec_spec = with_dynamics(rec_spec, actuators)
    if isinstance(store, str):
        store = EpisodeStore.open_or_create(
            store, rec_spec, rec_spec.control_hz, StoreConfig(durable=False)
        )
    scripted = scripted or ScriptedConfig()
    twin = Twin(rec_spec, TwinConfig(render=camera is not None), task)
    out = Recorded()
    try:
        agent = InjectingOperator(twin, scripted, injection)
        half_chunk = scripted.horizon * (scripted.chunk_dt or rec_spec.control_period) / 2
        rollout = TwinRollout(
            twin,
            RolloutConfig(
                executor=ExecutorConfig(),
                replan_horizon=half_chunk,
                record_fps=rec_spec.control_hz,
                max_duration=max_duration,
            ),
        )
        for seed in seeds:
            agent.seed = int(seed)
            instruction = twin.task.sample(int(seed)).instruction
            writer = store.begin(instruction, task.name, started_at=twin.time)
            try:
                result = rollout.run(
                    agent,
                    seed=int(seed),
                    writer=writer,
                    done=lambda: agent.done,
                    observe_cameras=[],
                )
            except BaseException as err:
                writer.abort(f"recording failed: {err}")
                raise
            out.ids.append(
                writer.commit("success" if result.success else "failure", result.success)
            )
            out.seeds.append(int(seed))
            out.success.append(bool(result.success))
    finally:
        twin.close()
    return out


SO101_INJECTIONS = {
    # turned to the left at the home pose's height (12 cm, over the cubes and the 3 cm bin
    # walls), out of the task's sector (|azimuth| <= 1 rad: the cubes' and the bin's centres),
    # then down, the fixed jaw's tip pushed 2 cm into the table. Going down while turning
    # (a straight line from home) swept the jaw low through the sector: in one episode it
    # caught the bin's wall and never reached the table.
    "table": Injection(
        "table",
        (1.6, 0.5, 0.1, 1.4, 1.72, 0.2),
        at=0.0,
        duration=5.4,
        via=(1.6, -1.0, 0.6, 1.4, 1.72, 0.2),
        ramp=2.4,
    ),
    # shoulder_pan past its upper limit (1.90 in the preset; the model stops it at 1.92)
    "limit": Injection("limit", (1.95, -1.0, 0.6, 1.4, 1.72, 0.2), at=0.0, duration=2.6),
    # wrist_flex flicked down and back at up to 2.5x its velocity limit
    "velocity": Injection("velocity", (0.0, -1.0, 0.6, 0.3, 1.72, 0.2), at=0.0, duration=1.2),
}
"""One injection of each kind for the SO-101 from its home pose (``robot=sim_so101``)."""
