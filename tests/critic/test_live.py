"""Live progress (what the critic node runs): accumulation, episodes, failures change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from critic.base import CriticError
from critic.live import LiveProgress, NonFiniteError
from tests.critic.conftest import OracleCritic, instruction, square_frames


class NaNCritic(OracleCritic):
    def delta_frames(self, a, b, instructions, reference=None):
        return np.full(len(a["front"]), np.nan)


def test_progress_accumulates_over_an_episode():
    live = LiveProgress(OracleCritic())
    live.reset(instruction("red"))
    frames = square_frames(10, "red", True)
    values = [live.update({"front": f})[0] for f in frames]
    assert values[0] == 0.0
    assert np.all(np.diff(values) >= -1e-9) and values[-1] == pytest.approx(1.0)
    live.reset(instruction("blue"))  # a new episode starts from 0
    assert live.update({"front": frames[-1]})[0] == 0.0


def test_anchor_mode_measures_against_the_first_frame():
    live = LiveProgress(OracleCritic(), mode="anchor")
    live.reset(instruction("red"))
    frames = square_frames(5, "red", True)
    values = [live.update({"front": f})[0] for f in frames]
    np.testing.assert_allclose(values, np.linspace(0, 1, 5), atol=0.05)


def test_nan_raises_and_keeps_the_last_good_state():
    live = LiveProgress(NaNCritic())
    live.reset(instruction("red"))
    frames = square_frames(3, "red", True)
    assert live.update({"front": frames[0]})[0] == 0.0
    with pytest.raises(NonFiniteError, match="nan"):
        live.update({"front": frames[1]})
    assert live.value == 0.0 and live.updates == 1


def test_refusals_name_the_problem():
    live = LiveProgress(OracleCritic())
    with pytest.raises(CriticError, match="no task/instruction"):
        live.update({"front": square_frames(1, "red", True)[0]})
    with pytest.raises(CriticError, match="empty"):
        live.reset("")
    live.reset(instruction("red"))
    with pytest.raises(CriticError, match="camera 'front'"):
        live.update({"wrist": square_frames(1, "red", True)[0]})
    with pytest.raises(CriticError, match="trained on 32x24"):
        live.update({"front": np.zeros((48, 64, 3), np.uint8)})
