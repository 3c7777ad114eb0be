"""Run one episode in the twin with a chunk policy, in process and in sim time (no ROS).

This is the loop behind policy evaluation, the learning and latency benchmarks, and fast
scripted data collection: the same :class:`robot.control.ControlLoop` (executor + safety) the
driver node runs, ticked in lockstep, so an episode costs physics plus the frames it needs.

When a chunk is requested: when less than ``replan_horizon`` seconds of actions remain queued
(the policy node's rule). How inference time is accounted for (``inference``):

``instant``  the world waits for the policy (lockstep in the graph): latency costs nothing.
``sync``     the control loop calls the policy and waits: the arm holds for the ticks the
             measured inference took (a naive real-robot loop).
``async``    inference runs beside the loop (the policy node): the chunk arrives the measured
             latency later, stamped with its observation's time, and the executor keeps running
             the old chunk meanwhile and drops the steps that went stale.

The ``sync``/``async`` pair over the same seeds is what ``bench/policy_latency.py`` compares.
Latency may be scaled (``latency_scale``) or fixed (``fixed_latency``, s) to model a slower or
faster machine.

An agent may hand back a ``HUMAN`` chunk (the scripted person of practice's human-in-the-loop,
:mod:`policy.learner.loop`): it goes to the executor as a person's command, with the
intervention on, exactly as the driver takes ``command/teleop``; the next policy chunk ends it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from robot.control import ControlLoop, TickResult
from robot.executor import ChunkExecutor, ExecutorConfig, committed_prefix
from robot.mjcf import ForwardKinematics
from robot.safety import SafetyLimits
from robot.schema import ActionChunk, ControlSource, Observation

INFERENCE_MODES = ("instant", "sync", "async")


class Agent(Protocol):
    """Anything that turns an observation and an instruction into a chunk (``ChunkPolicy``)."""

    def reset(self) -> None: ...

    def predict(self, obs: Observation, instruction: str) -> ActionChunk: ...


@dataclass
class RolloutConfig:
    """``record_fps``: steps per second written to a writer (a divisor of the control rate).
    ``settle``: seconds the end condition must hold before the episode ends.
    ``max_duration``: sim seconds; ``None`` takes the task's."""

    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    replan_horizon: float = 0.3
    inference: str = "instant"
    latency_scale: float = 1.0
    fixed_latency: float = 0.0
    record_fps: float = 10.0
    settle: float = 0.5
    max_duration: float | None = None

    def __post_init__(self) -> None:
        if self.inference not in INFERENCE_MODES:
            raise ValueError(
                f"RolloutConfig.inference={self.inference!r}: one of {INFERENCE_MODES}"
            )
        if not self.replan_horizon >= 0:
            raise ValueError(f"RolloutConfig.replan_horizon={self.replan_horizon} must be >= 0")


@dataclass
class RolloutResult:
    """What one episode of :meth:`TwinRollout.run` gave. ``held_ticks``: ticks with no action
    to execute (the arm held)."""

    seed: int | None
    instruction: str
    success: bool
    duration: float
    ticks: int
    held_ticks: int
    chunks: int
    latencies: list[float] = field(default_factory=list)
    frames: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies) if self.latencies else np.zeros(1)
        return {
            "seed": self.seed,
            "instruction": self.instruction,
            "success": self.success,
            "duration_s": round(self.duration, 3),
            "ticks": self.ticks,
            "held_ticks": self.held_ticks,
            "chunks": self.chunks,
            "latency_p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 3),
        }


class TwinRollout:
    """Drives ``twin`` (a :class:`robot.sim.twin.Twin`) with an agent through the control path.

    One instance per twin; :meth:`run` resets the scene and plays one episode.
    """

    def __init__(self, twin, config: RolloutConfig | None = None) -> None:
        self.twin = twin
        self.config = config or RolloutConfig()
        self.spec = twin.spec
        self._fk = ForwardKinematics.for_robot(self.spec)
        period = self.spec.control_period
        every = 1.0 / (self.config.record_fps * period)
        if abs(every - round(every)) > 1e-6 or round(every) < 1:
            raise ValueError(
                f"record_fps={self.config.record_fps} does not divide the control rate "
                f"{self.spec.control_hz} Hz"
            )
        self._record_every = round(every)

    def observe(
        self, cameras: list[str] | None = None, size: tuple[int, int] | None = None
    ) -> Observation:
        """The current observation: joint state and a fresh frame from each camera, rendered
        at ``size`` ``(h, w)`` (a policy's :attr:`~policy.base.ChunkPolicy.input_size`; None:
        each camera's own size). Rendering the model's size instead of resizing a full frame
        is most of what makes a rollout fast; frames written to a store stay full size. A
        model whose input has another aspect than a camera gets that camera's full frame (the
        policy resizes it, as it resizes a real camera's): the same fovy at another aspect
        would crop the view, not scale it."""
        state = self.twin.arm.read()
        names = [c.name for c in self.spec.cameras] if cameras is None else cameras
        images = {name: self.twin.render(name, self._render_size(name, size)) for name in names}
        return Observation(
            stamp=state.stamp,
            joint_pos=state.position,
            joint_vel=state.velocity,
            images=images,
            image_stamps={name: state.stamp for name in names},
        )

    def _render_size(self, camera: str, size: tuple[int, int] | None) -> tuple[int, int] | None:
        if size is None:
            return None
        from robot.sim.twin import has_camera_aspect

        cam = next(c for c in self.spec.cameras if c.name == camera)
        return tuple(size) if has_camera_aspect(cam, *size) else None

    def run(
        self,
        agent: Agent,
        *,
        seed: int | None = None,
        writer=None,
        done: Callable[[], bool] | None = None,
        keep_frames: str | None = None,
        observe_cameras: list[str] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> RolloutResult:
        """Reset with ``seed`` and play one episode.

        ``writer``: an :class:`episodes.store.EpisodeWriter`; every ``1/record_fps`` s the state,
        the command actually sent, who sent it and every camera's frame are appended (the
        caller commits). ``done``: the end condition (default: the task's ground-truth
        success); the episode ends ``settle`` s after it first holds, or at ``max_duration``.
        ``keep_frames``: a camera whose frames at the record rate are kept in the result (for
        failure videos). ``on_tick()`` is called after every physics step (to measure the
        scene, e.g. which object the gripper went for).
        """
        cfg = self.config
        twin, spec = self.twin, self.spec
        period = spec.control_period
        instruction = twin.reset(seed=seed)
        agent.reset()
        arm = twin.arm
        if not arm.connected:
            arm.connect()
        if not arm.enabled:
            arm.enable()
        executor = ChunkExecutor(spec, cfg.executor)
        safety = SafetyLimits(spec, self._fk)
        control = ControlLoop(arm, safety, executor)
        control.start()
        done = done or twin.success
        limit = cfg.max_duration if cfg.max_duration is not None else twin.task_config.max_duration
        n_ticks = round(limit / period)
        start = twin.time
        result = RolloutResult(seed, instruction, False, 0.0, 0, 0, 0)
        if keep_frames:
            result.frames[keep_frames] = []
        observe_size = getattr(agent, "input_size", None)
        pending: tuple[float, ActionChunk] | None = None  # async: (arrival time, chunk)
        blocked_until = -math.inf  # sync: the loop is inside predict() until then
        done_since: float | None = None
        human_until = -math.inf  # a person's chunk runs until then before the next is asked for
        for k in range(n_ticks):
            now = twin.time
            if pending is not None and now >= pending[0] - 1e-9:
                executor.submit(pending[1], now)
                pending = None
            want = pending is None and now >= blocked_until and now >= human_until
            if want and executor.remaining_horizon(now) <= cfg.replan_horizon:
                obs = self.observe(observe_cameras, observe_size)
                executor.observe(obs.stamp)
                t0 = time.perf_counter()
                if cfg.executor.blend == "rtc":
                    lead = cfg.executor.rtc_prefix + (
                        result.latencies[-1]
                        if result.latencies and cfg.inference != "instant"
                        else 0.0
                    )
                    plan = executor.plan(obs.stamp)
                    prefix = committed_prefix(plan, obs.stamp, agent.chunk_dt, lead)
                    chunk = agent.predict(obs, instruction, prefix)
                else:
                    chunk = agent.predict(obs, instruction)
                latency = cfg.fixed_latency or (time.perf_counter() - t0) * cfg.latency_scale
                result.latencies.append(latency)
                result.chunks += 1
                if chunk.source == ControlSource.HUMAN:  # a person's chunk (practice, HIL)
                    if not executor.intervention_active:
                        executor.set_intervention(True, now)
                    executor.submit_teleop(chunk, now)
                    human_until = chunk.end_time - cfg.replan_horizon
                elif cfg.inference == "instant":
                    if executor.intervention_active:
                        executor.set_intervention(False, now)
                    executor.submit(chunk, now)
                else:
                    ready = now + math.ceil(latency / period - 1e-9) * period
                    if ready <= now:
                        executor.submit(chunk, now)
                    else:
                        pending = (ready, chunk)
                        if cfg.inference == "sync":
                            blocked_until = ready
            if now < blocked_until:  # sync inference: no tick runs, the arm holds
                arm.hold()
                tick: TickResult | None = None
                result.held_ticks += 1
            else:
                tick = control.tick(now)
                result.held_ticks += int(tick.held)
            if (writer is not None or keep_frames) and k % self._record_every == 0:
                self._record(writer, tick, result, keep_frames)
            twin.step(period)
            result.ticks += 1
            if on_tick is not None:
                on_tick()
            if done():
                done_since = twin.time if done_since is None else done_since
                if twin.time - done_since >= cfg.settle - 1e-9:
                    break
            else:
                done_since = None
        control.stop()
        result.duration = twin.time - start
        result.success = bool(twin.success())
        return result

    def _record(self, writer, tick: TickResult | None, result: RolloutResult, keep: str | None):
        state = tick.state if tick is not None else self.twin.arm.read()
        command = tick.command if tick is not None else state.position
        source = int(tick.source if tick is not None else ControlSource.HOLD)
        names = [c.name for c in self.spec.cameras] if writer is not None else [keep]
        images = {name: self.twin.render(name) for name in names}
        if writer is not None:
            writer.append(state.stamp, state.position, state.velocity, command, source, images)
        if keep:
            result.frames[keep].append(images[keep])
