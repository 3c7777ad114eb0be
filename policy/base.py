"""The one interface every policy backend implements: observation + instruction -> chunk.

    policy.reset()                               a new episode (clears any internal state)
    policy.predict(obs, instruction) -> chunk    ActionChunk stamped with obs.stamp
    policy.check(spec)                           refuse a robot the policy was not made for

Backends: the compact VLA (:mod:`policy.models.vla`) and LeRobot's pretrained VLAs
(:mod:`policy.lerobot_adapters`: ACT, SmolVLA, pi0/pi0.5). ``predict`` may take
``committed``, the ``(k, D)`` targets the executor will run whatever this call returns (the
real-time-chunking prefix, :meth:`robot.executor.ChunkExecutor.committed_actions`); a backend
that can condition on it returns a chunk whose first ``k`` steps are those targets, one that
cannot ignores it.

Every check that can fail before the first chunk is sent lives in ``check``: a checkpoint made
for another robot (joint names, action dimension), a camera the model needs but the robot does
not have. The node calls it at start-up, so a mismatch is an error naming it, not a bad motion.
"""

from __future__ import annotations

import abc

import numpy as np

from robot.schema import ActionChunk, Observation, RobotSpec


class PolicyError(ValueError):
    """A policy cannot run on this input or robot. The message names the mismatch."""


class ChunkPolicy(abc.ABC):
    """A policy that predicts ``horizon`` future joint targets at once."""

    joint_names: tuple[str, ...]
    cameras: tuple[str, ...]
    horizon: int
    chunk_dt: float  # seconds between chunk steps
    # (h, w) every camera's frame is resized to before the model sees it; None: it takes any
    # size. A twin renders observations at this size directly, which costs far less on a CPU
    # than a full frame resized (robot.sim.twin.Twin.render).
    input_size: tuple[int, int] | None = None

    @abc.abstractmethod
    def reset(self) -> None: ...

    @abc.abstractmethod
    def predict(
        self, obs: Observation, instruction: str, committed: np.ndarray | None = None
    ) -> ActionChunk: ...

    def check(self, spec: RobotSpec) -> None:
        """Raise :class:`PolicyError` if this policy cannot drive ``spec``'s robot."""
        if tuple(spec.joint_names) != tuple(self.joint_names):
            raise PolicyError(
                f"{self.describe()} was trained for joints {list(self.joint_names)} "
                f"({len(self.joint_names)} actions); robot '{spec.name}' has "
                f"{list(spec.joint_names)} ({spec.dof})"
            )
        have = {c.name for c in spec.cameras}
        missing = [c for c in self.cameras if c not in have]
        if missing:
            raise PolicyError(
                f"{self.describe()} needs cameras {missing}; robot '{spec.name}' has {sorted(have)}"
            )

    def check_observation(self, obs: Observation) -> None:
        missing = [c for c in self.cameras if c not in obs.images]
        if missing:
            raise PolicyError(
                f"{self.describe()}: observation lacks camera(s) {missing} "
                f"(has {sorted(obs.images)})"
            )
        if obs.joint_pos.shape != (len(self.joint_names),):
            raise PolicyError(
                f"{self.describe()}: joint_pos has shape {obs.joint_pos.shape}, "
                f"expected ({len(self.joint_names)},) for {list(self.joint_names)}"
            )

    def describe(self) -> str:
        return type(self).__name__

    def chunk_times(self) -> np.ndarray:
        return self.chunk_dt * np.arange(1, self.horizon + 1, dtype=np.float64)
