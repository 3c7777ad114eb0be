"""LeRobot's policies (ACT, SmolVLA, pi0, pi0.5) behind our :class:`policy.base.ChunkPolicy`.

:class:`LeRobotPolicy` loads a LeRobot checkpoint (a local directory, or a hub id on a machine
with network) with LeRobot's own ``from_pretrained`` and its saved pre/post processors, so the
normalisation statistics the model was trained with are the ones it runs with.
:func:`train_act` trains LeRobot's ACT on our episode store: the baseline the compact VLA is
benchmarked against.

``lerobot`` and ``torch`` are imported lazily, inside the functions that need them.
"""

from policy.lerobot_adapters.act_trainer import ActTrainConfig, train_act
from policy.lerobot_adapters.adapter import SIDECAR, LeRobotPolicy

__all__ = ["SIDECAR", "ActTrainConfig", "LeRobotPolicy", "train_act"]
