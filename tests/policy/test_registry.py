"""Policy backends are chosen by name in one registry; a bad name or path fails naming it."""

from __future__ import annotations

import pytest

from policy.base import PolicyError
from policy.registry import BACKENDS, load_policy


def test_backends_are_listed_and_a_typo_names_the_nearest():
    assert BACKENDS.names() == ["compact", "lerobot"]
    with pytest.raises(PolicyError, match="did you mean 'compact'"):
        load_policy("compakt", "/ckpt", joint_names=["a"], cameras=[])
    with pytest.raises(PolicyError, match="checkpoint is empty"):
        load_policy("compact", "", joint_names=["a"], cameras=[])
