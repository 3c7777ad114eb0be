"""Critic backends are chosen by name in one registry, by the config key or a path prefix."""

from __future__ import annotations

import pytest

from critic.base import CriticError
from critic.registry import CRITICS, load_critic, split_backend


def test_a_path_prefix_names_the_backend_and_a_plain_path_is_compact():
    assert split_backend("vlm:/models/vlac") == ("vlm", "/models/vlac")
    assert split_backend("/runs/critic") == ("compact", "/runs/critic")
    assert split_backend("s3://bucket/critic") == ("compact", "s3://bucket/critic")


def test_an_unknown_backend_names_the_nearest():
    assert CRITICS.names() == ["compact", "vlm"]
    with pytest.raises(CriticError, match="did you mean 'vlm'"):
        load_critic("/m", "vlmm")
