"""Fitting the twin to the robot: per-joint servo gain, damping and command delay.

Why these three: a position servo tracks its target through its stiffness (gain), the joint's
viscous losses (damping) and the time the target takes to reach it over the bus (delay); they
set how far and how late a joint follows a command, which is what a tracking error measures.
Everything else (masses, geometry) comes from the MJCF and is trusted.

How: coordinate search over the three, round by round, each round a grid around the current
best that narrows. One replay of the fit episodes per grid point gives every joint's tracking
RMS at once (all joints take that point's value of the parameter being searched, each its own
best of the others), and each joint keeps the point that was best *for it*: the joints couple
only through the arm's inertia, so this finds each joint's parameters in a few dozen replays
rather than a search over all joints jointly.

The override file (YAML) is a robot preset fragment, ``twin.actuators``, that the twin loads:
``dojo replay ... replay.dynamics=<file>``, or copied into a preset::

    twin:
      actuators:
        shoulder_pan: {kp: 21.4, damping: 0.93, delay: 0.042}
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from episodes.store import Episode
from replay.actions import ActionReplayer
from replay.config import FitConfig, ReplayError
from robot.description import ActuatorDynamics, DescriptionError, TwinDescription, from_mapping
from robot.schema import RobotSpec
from robot.sim.twin import SimArm


def with_dynamics(spec: RobotSpec, actuators: Mapping[str, ActuatorDynamics]) -> RobotSpec:
    """``spec`` whose twin has ``actuators`` (joint -> servo gain, damping, delay)."""
    twin = spec.twin or TwinDescription()
    merged = {**twin.actuators, **dict(actuators)}
    return dataclasses.replace(spec, twin=dataclasses.replace(twin, actuators=merged))


def load_override(path: str | Path, spec: RobotSpec) -> dict[str, ActuatorDynamics]:
    """The ``twin.actuators`` of the override file at ``path``, checked against ``spec``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ReplayError(f"{path}: not YAML: {err}") from None
    actuators = (
        ((data or {}).get("twin") or {}).get("actuators") if isinstance(data, dict) else None
    )
    if not isinstance(actuators, dict) or not actuators:
        raise ReplayError(f"{path}: no twin.actuators section (write one with `dojo replay fit`)")
    unknown = sorted(set(actuators) - set(spec.joint_names))
    if unknown:
        raise ReplayError(
            f"{path}: twin.actuators names joint(s) {unknown}; robot '{spec.name}' has "
            f"{list(spec.joint_names)}"
        )
    try:
        return {
            name: from_mapping(ActuatorDynamics, value, f"{path}: twin.actuators.{name}")
            for name, value in actuators.items()
        }
    except DescriptionError as err:
        raise ReplayError(str(err)) from None


def write_override(
    path: str | Path, actuators: Mapping[str, ActuatorDynamics], comment: str
) -> Path:
    """Write ``actuators`` as a preset override (``twin.actuators``), ``comment`` on top."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "twin": {
            "actuators": {
                name: {
                    "kp": round(float(a.kp), 4) if a.kp is not None else None,
                    "damping": round(float(a.damping), 5) if a.damping is not None else None,
                    "delay": round(float(a.delay), 4),
                }
                for name, a in actuators.items()
            }
        }
    }
    lines = "".join(f"# {line}\n" for line in comment.splitlines())
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(lines + yaml.safe_dump(body, sort_keys=False))
    tmp.replace(path)
    return path


def model_dynamics(twin) -> dict[str, ActuatorDynamics]:
    """The servo gain and damping the twin's model has now for each joint, no delay."""
    arm = twin.arm
    m = twin.model
    out = {}
    for c in arm._channels:
        out[c.name] = ActuatorDynamics(
            kp=float(m.actuator_gainprm[c.actuator, 0]),
            damping=float(np.mean(m.dof_damping[c.dofadr])),
            delay=float(arm._delay_steps[arm.spec.joint_names.index(c.name)])
            * twin.config.physics_dt,
        )
    return out


def apply_dynamics(twin, actuators: Mapping[str, ActuatorDynamics]) -> None:
    """Give the twin an arm with ``actuators`` (every joint named: the model keeps what the
    last one wrote), connected and enabled. The scene is not rebuilt."""
    missing = [j for j in twin.spec.joint_names if j not in actuators]
    if missing:
        raise ReplayError(f"apply_dynamics: no dynamics for joint(s) {missing}")
    twin.arm = SimArm(with_dynamics(twin.spec, actuators), twin)
    twin.arm.connect()
    twin.arm.enable()


def tracking_errors(replayer: ActionReplayer, episodes: Sequence[Episode]) -> np.ndarray:
    """Recorded minus twin joint positions at every recorded step of ``episodes``, ``(N, D)``."""
    errors = []
    for ep in episodes:
        trace = replayer.run(ep, check_recorded=False)
        errors.append(ep.joint_pos - trace.at(ep.t - ep.t[0]))
    return np.concatenate(errors, axis=0)


def tracking_rms(replayer: ActionReplayer, episodes: Sequence[Episode]) -> np.ndarray:
    """Per-joint RMS of recorded minus twin joint positions over ``episodes``, ``(D,)``."""
    return np.sqrt(np.mean(tracking_errors(replayer, episodes) ** 2, axis=0))


@dataclass
class FitResult:
    """What :func:`fit` found: ``actuators`` per joint, and the per-joint tracking RMS on the
    held-out episodes before (``before``: the twin as it was) and after."""

    actuators: dict[str, ActuatorDynamics]
    before: np.ndarray
    after: np.ndarray
    fit_rms: np.ndarray
    evaluations: int
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Held-out RMS (over all joints) before over after."""
        after = float(np.sqrt(np.mean(self.after**2)))
        return float(np.sqrt(np.mean(self.before**2))) / max(after, 1e-12)


# finite-difference steps of the parameters: log gain, log damping, delay (s)
_STEPS = np.array([0.05, 0.1, 0.006])


def fit(
    replayer: ActionReplayer,
    train: Sequence[Episode],
    held_out: Sequence[Episode],
    config: FitConfig,
    *,
    on_evaluation: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Fit gain, damping and delay per joint on ``train``; judge on ``held_out``.

    First a delay sweep (every joint the same delay: a bus delays them all) picks each joint's
    starting delay; then Levenberg-Marquardt steps on the tracking residuals, per joint, with
    the Jacobian's three columns from three replays (every joint's gain, then damping, then
    delay nudged at once). The residual's shape, not only its size, tells a late servo (a
    shifted copy of the motion) from a soft one (sag under load) or a damped one (lag growing
    with speed), which is why the three can be told apart.
    """
    if not train or not held_out:
        raise ReplayError("replay fit needs at least one episode to fit and one held out")
    twin = replayer.twin
    names = list(twin.spec.joint_names)
    start = model_dynamics(twin)
    dt = twin.config.physics_dt
    before = tracking_rms(replayer, held_out)
    # theta per joint: log kp, log damping, delay
    theta0 = np.array(
        [
            [math.log(start[j].kp), math.log(max(start[j].damping, 1e-6)), start[j].delay]
            for j in names
        ]
    )
    spans = np.array([math.log(config.gain_range), math.log(config.damping_range), 0.0])
    lower, upper = theta0 - spans, theta0 + spans
    lower[:, 2], upper[:, 2] = 0.0, config.max_delay
    evaluations = 0
    history: list[dict[str, Any]] = []

    def residuals(theta: np.ndarray) -> np.ndarray:
        nonlocal evaluations
        apply_dynamics(twin, _actuators(names, theta, dt))
        err = tracking_errors(replayer, train)
        evaluations += 1
        if on_evaluation is not None:
            on_evaluation(evaluations, float(np.sqrt(np.mean(err**2))))
        return err.T  # (D, N)

    def rms(r: np.ndarray) -> np.ndarray:
        return np.sqrt(np.mean(r**2, axis=1))

    theta = theta0.copy()
    r0 = residuals(theta)
    best = rms(r0)
    for tau in _delay_grid(config, dt):
        trial = theta.copy()
        trial[:, 2] = tau
        r = residuals(trial)
        better = rms(r) < best
        theta[better, 2] = tau
        best = np.where(better, rms(r), best)
    r0 = residuals(theta)
    lam = np.full(len(names), 1e-2)
    for it in range(config.rounds):
        jac = np.zeros((*r0.shape, 3))  # (D, N, 3)
        for p in range(3):
            nudged = theta.copy()
            h = _STEPS[p] if p < 2 else max(_STEPS[p], 3 * dt)
            nudged[:, p] = np.minimum(nudged[:, p] + h, upper[:, p])
            step = nudged[:, p] - theta[:, p]
            back = step < 1e-12  # at the upper bound: difference downwards
            nudged[back, p] = theta[back, p] - h
            step[back] = -h
            jac[:, :, p] = (residuals(nudged) - r0) / step[:, None]
        trial = theta.copy()
        for j in range(len(names)):
            a = jac[j].T @ jac[j]
            g = jac[j].T @ r0[j]
            # residual = recorded - twin: a step that cancels it is -J^+ r
            delta = -np.linalg.solve(a + lam[j] * np.diag(np.diag(a) + 1e-12), g)
            trial[j] = np.clip(theta[j] + delta, lower[j], upper[j])
        r_trial = residuals(trial)
        better = rms(r_trial) < rms(r0)
        lam = np.where(better, lam / 3.0, lam * 4.0)
        theta[better] = trial[better]
        r0 = r_trial if better.all() else residuals(theta)
        history.append(
            {
                "iteration": it,
                "fit_rms": rms(r0).tolist(),
                "kp": np.exp(theta[:, 0]).tolist(),
                "damping": np.exp(theta[:, 1]).tolist(),
                "delay": theta[:, 2].tolist(),
            }
        )
    fitted = _actuators(names, theta, dt)
    apply_dynamics(twin, fitted)
    after = tracking_rms(replayer, held_out)
    return FitResult(fitted, before, after, rms(r0), evaluations, history)


def _delay_grid(config: FitConfig, dt: float) -> np.ndarray:
    """The starting sweep's delays: ``grid`` points from 0 to ``max_delay``, on physics steps."""
    return np.unique(np.round(np.linspace(0.0, config.max_delay, config.grid) / dt) * dt)[1:]


def _actuators(names: Sequence[str], theta: np.ndarray, dt: float) -> dict[str, ActuatorDynamics]:
    return {
        n: ActuatorDynamics(
            kp=float(math.exp(t[0])),
            damping=float(math.exp(t[1])),
            delay=float(round(t[2] / dt) * dt),
        )
        for n, t in zip(names, theta, strict=True)
    }
