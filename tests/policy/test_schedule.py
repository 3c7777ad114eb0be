"""The learning-rate schedule follows whichever budget ends the run (steps or seconds)."""

from __future__ import annotations

import itertools

import pytest

from policy.config import PolicyTrainConfig, VLAConfig
from policy.schedule import Budget, warmup_cosine
from policy.train import Trainer
from tests.policy.conftest import CAMERAS, JOINTS, tiny_model_overrides

CAMS = [c[0] for c in CAMERAS]


def test_fraction_is_the_larger_of_the_step_and_time_fractions():
    b = Budget(steps=1000, seconds=100.0, warmup=0)
    assert b.fraction(100, 50.0) == pytest.approx(0.5)  # time binds
    assert b.fraction(900, 10.0) == pytest.approx(0.9)  # steps bind
    assert b.fraction(10, 1e6) == 1.0
    assert Budget(steps=100).fraction(50, 1e9) == pytest.approx(0.5)  # no time budget


def test_exhausted_names_the_budget_that_ended_the_run():
    b = Budget(steps=10, seconds=5.0)
    assert b.exhausted(3, 1.0) is None
    assert b.exhausted(10, 1.0) == "steps"
    assert b.exhausted(3, 5.0) == "seconds"


def test_warmup_then_cosine_to_the_floor():
    assert warmup_cosine(0, 0.0, warmup=10, floor=0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 0.0, warmup=10, floor=0.1) == pytest.approx(1.0)
    assert warmup_cosine(10, 0.0, warmup=10, floor=0.1) == pytest.approx(1.0)
    assert warmup_cosine(50, 0.5, warmup=10, floor=0.1) == pytest.approx(0.55)
    assert warmup_cosine(99, 1.0, warmup=10, floor=0.1) == pytest.approx(0.1)


def test_bad_budgets_are_refused_naming_the_key():
    with pytest.raises(ValueError, match="steps=0"):
        Budget(steps=0)
    with pytest.raises(ValueError, match="seconds=-1"):
        Budget(steps=1, seconds=-1)


def test_a_seconds_budget_ends_the_run_at_the_floor(learnable_store, tmp_path, text_encoder):
    """A million nominal steps and a 3 s budget: the old schedule (cosine over steps) ended at
    the peak rate; this one must end at its floor. The clock is simulated (0.1 s per reading)
    so the test does not depend on how fast this machine trains."""
    ticks = itertools.count()
    cfg = PolicyTrainConfig(
        stores=[learnable_store.url],
        out=str(tmp_path / "run"),
        steps=1_000_000,
        seconds=3.0,
        lr=1e-3,
        lr_floor=0.1,
        warmup=2,
        batch_size=4,
        log_every=1,
        checkpoint_every=0,
        progress=False,
        model=VLAConfig(**tiny_model_overrides()),
    )
    trainer = Trainer(
        cfg,
        joint_names=JOINTS,
        cameras=CAMS,
        text=text_encoder,
        clock=lambda: 0.1 * next(ticks),
    )
    summary = trainer.run()
    assert summary["stopped_by"] == "seconds"
    lrs = [h["lr"] for h in trainer.history if "lr" in h]
    assert max(lrs) == pytest.approx(1e-3, rel=0.05)  # it did reach the peak after warmup
    assert trainer.last_lr == pytest.approx(1e-4, rel=0.05)  # and ended at the floor
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(lrs[2:]))  # monotone decay


def test_warmup_is_capped_below_the_step_budget():
    assert Budget(steps=1, warmup=100).warmup == 0
    assert Budget(steps=50, warmup=100).warmup == 49
    assert Budget(steps=500, warmup=100).warmup == 100
