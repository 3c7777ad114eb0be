"""Stand-in real episodes for the replay tests, recorded once per session in the twin.

Short episodes (a few seconds at the control rate, one 64x48 front camera) keep the whole
module near half a minute: a clean one of the nominal arm, a clean one and a fit pair of an arm
with other gains, damping and a 40 ms delay, and one each with an injected table collision and
an injected joint-limit violation.
"""

from __future__ import annotations

import numpy as np
import pytest

from replay.synthetic import SO101_INJECTIONS, perturbed, record
from robot.sim.config import TaskConfig
from tests.sim_helpers import robot_spec

KP, DAMPING = 17.8, 0.6  # the SO-101 MJCF's position servos and joint damping


@pytest.fixture(scope="session")
def spec():
    return robot_spec("so101")


@pytest.fixture(scope="session")
def task():
    return TaskConfig()


@pytest.fixture(scope="session")
def real_dynamics(spec):
    return perturbed(spec, KP, DAMPING, np.random.default_rng(7), delay=(0.04, 0.04))


@pytest.fixture(scope="session")
def stores(tmp_path_factory, spec, task, real_dynamics):
    """``name -> (store path, Recorded)``."""
    root = tmp_path_factory.mktemp("replay")
    out = {}
    path = root / "nominal.zarr"
    out["nominal"] = (path, record(str(path), spec, task, [3], max_duration=4.0))
    path = root / "real.zarr"
    out["real"] = (
        path,
        record(str(path), spec, task, [1, 2, 4], actuators=real_dynamics, max_duration=4.0),
    )
    path = root / "injected.zarr"
    rec = record(
        str(path),
        spec,
        task,
        [5],
        actuators=real_dynamics,
        injection=SO101_INJECTIONS["table"],
        max_duration=SO101_INJECTIONS["table"].duration + 0.2,
    )
    more = record(
        str(path),
        spec,
        task,
        [6],
        actuators=real_dynamics,
        injection=SO101_INJECTIONS["limit"],
        max_duration=2.8,
    )
    rec.ids += more.ids
    out["injected"] = (path, rec)
    return out
