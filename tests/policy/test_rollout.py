"""Episodes in the twin through the real control path, and what inference latency costs."""

from __future__ import annotations

import numpy as np
import pytest

from episodes.store import EpisodeStore, StoreConfig
from policy.config import PolicyEvalConfig
from policy.evaluate import evaluate, wilson_interval
from policy.rollout import RolloutConfig, TwinRollout, committed_prefix
from robot.executor import ChunkExecutor, ExecutorConfig
from robot.schema import ActionChunk, ControlSource
from robot.sim.config import TaskConfig, TwinConfig
from robot.sim.twin import Twin
from tests.sim_helpers import robot_spec


class HomeAgent:
    """Holds the arm at home with 1-s chunks of 10 steps."""

    chunk_dt = 0.1

    def __init__(self, spec):
        self.spec = spec
        self.calls = 0

    def reset(self):
        self.calls = 0

    def predict(self, obs, instruction, committed=None):
        self.calls += 1
        return ActionChunk(
            obs.stamp,
            self.spec.joint_names,
            np.tile(self.spec.home, (10, 1)),
            0.1 * np.arange(1, 11),
        )


@pytest.fixture(scope="module")
def twin():
    spec = robot_spec("so101")
    t = Twin(spec, TwinConfig(), TaskConfig(max_duration=3.0))
    yield t
    t.close()


def run(twin, inference: str, latency: float):
    cfg = RolloutConfig(replan_horizon=0.4, inference=inference, fixed_latency=latency)
    return TwinRollout(twin, cfg).run(HomeAgent(twin.spec), seed=3, observe_cameras=[])


def test_synchronous_inference_holds_the_arm_while_the_policy_thinks(twin):
    instant = run(twin, "instant", 0.0)
    sync = run(twin, "sync", 0.2)
    asynchronous = run(twin, "async", 0.2)
    assert instant.held_ticks == 0
    # 3 s at 50 Hz: sync waits 0.2 s (10 ticks) for every chunk; async only for the first
    assert sync.held_ticks >= 10 * (sync.chunks - 1)
    assert asynchronous.held_ticks <= 10
    assert sync.held_ticks > 3 * asynchronous.held_ticks
    assert instant.ticks == sync.ticks == asynchronous.ticks == 150


def test_recorded_steps_carry_what_was_sent_and_who_sent_it(twin, tmp_path):
    store = EpisodeStore.create(
        str(tmp_path / "s.zarr"), twin.spec, 10.0, StoreConfig(min_free_bytes=0, durable=False)
    )
    writer = store.begin("hold", "pick_place", 0.0)
    TwinRollout(twin, RolloutConfig(max_duration=1.0)).run(
        HomeAgent(twin.spec), seed=1, writer=writer, observe_cameras=[]
    )
    writer.commit("failure", False)
    ep = store.read(store.episode_ids()[0])
    assert ep.n_steps == 10
    assert set(ep.control_source.tolist()) == {int(ControlSource.POLICY)}
    np.testing.assert_allclose(ep.action[-1], twin.spec.home, atol=1e-6)
    assert ep.images["front"].shape == (10, 240, 320, 3)


class TakeoverAgent(HomeAgent):
    """The policy for its first two chunks, then a person for two, then the policy again."""

    def predict(self, obs, instruction, committed=None):
        chunk = super().predict(obs, instruction)
        if self.calls in (3, 4):
            return ActionChunk(
                chunk.stamp, chunk.joint_names, chunk.positions, chunk.times, ControlSource.HUMAN
            )
        return chunk


def test_a_persons_chunk_runs_as_teleop_and_is_recorded_as_human(twin, tmp_path):
    store = EpisodeStore.create(
        str(tmp_path / "s.zarr"), twin.spec, 10.0, StoreConfig(min_free_bytes=0, durable=False)
    )
    writer = store.begin("hold", "pick_place", 0.0)
    result = TwinRollout(twin, RolloutConfig(replan_horizon=0.4)).run(
        TakeoverAgent(twin.spec), seed=1, writer=writer, observe_cameras=[]
    )
    writer.commit("failure", False)
    source = store.read(store.episode_ids()[0]).control_source.tolist()
    human = [i for i, s in enumerate(source) if s == int(ControlSource.HUMAN)]
    assert human, source
    inside = source[human[0] : human[-1] + 1]  # one takeover, handed back once
    assert int(ControlSource.POLICY) not in inside, source
    assert source[0] == int(ControlSource.POLICY) and source[-1] == int(ControlSource.POLICY)
    # the executor holds for the tick or two between a person's chunk and the next (a fresh
    # chunk's first step is one chunk period out): seen, bounded, and left for the executor
    assert result.held_ticks <= 20, result.held_ticks


def test_committed_prefix_samples_the_executor_plan_at_the_chunk_times(twin):
    spec = twin.spec
    ex = ChunkExecutor(spec, ExecutorConfig())
    ex.observe(0.0)
    ramp = np.linspace(0, 1, 10)[:, None] * np.ones(spec.dof)
    ex.submit(ActionChunk(0.0, spec.joint_names, ramp, 0.1 * np.arange(1, 11)), 0.0)
    prefix = committed_prefix(ex.plan(0.0), 0.0, 0.1, 0.25)
    assert prefix.shape == (3, spec.dof)
    np.testing.assert_allclose(prefix, ramp[:3], atol=1e-9)


def test_wilson_interval_behaves_at_the_edges():
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and 0.1 < hi < 0.2
    lo, hi = wilson_interval(20, 20)
    assert hi == 1.0 and 0.8 < lo < 0.9
    lo, hi = wilson_interval(35, 50)
    assert 0.55 < lo < 0.58 and 0.80 < hi < 0.83


def test_evaluation_reports_rate_interval_and_per_instruction(twin, tmp_path):
    summary = evaluate(
        HomeAgent(twin.spec),
        twin,
        PolicyEvalConfig(episodes=2, seed=5, failure_videos=1),
        RolloutConfig(max_duration=1.0),
        out=tmp_path,
        progress=False,
    )
    assert summary["successes"] == 0 and summary["episodes"] == 2
    assert summary["ci_low"] == 0.0 and summary["ci_high"] > 0.3
    assert sum(v["episodes"] for v in summary["per_instruction"].values()) == 2
    assert len(summary["failure_videos"]) == 1
    assert (tmp_path / "eval.json").exists()


class SizedAgent(HomeAgent):
    """Asks for its input size and keeps what it was shown (and the full-size render of the
    same moment, resized as training data is) to compare."""

    input_size = (72, 96)

    def __init__(self, spec, twin):
        super().__init__(spec)
        self.twin = twin
        self.seen: list[tuple[dict, dict]] = []

    def predict(self, obs, instruction, committed=None):
        from policy.data import resize_frames

        full = {
            name: resize_frames(self.twin.render(name)[None], self.input_size)[0]
            for name in obs.images
        }
        self.seen.append((dict(obs.images), full))
        return super().predict(obs, instruction, committed)


def test_a_rollout_renders_at_the_policy_input_size_close_to_a_resized_full_frame(twin):
    """Training data is full frames resized (policy.data.resize_frames); a rollout now renders
    the model's size directly. The two must agree within a pixel tolerance, or the policy
    would be evaluated on other pixels than it was trained on."""
    agent = SizedAgent(twin.spec, twin)
    TwinRollout(twin, RolloutConfig(replan_horizon=0.4, max_duration=1.0)).run(agent, seed=5)
    assert agent.seen
    for shown, full in agent.seen:
        for name, frame in shown.items():
            assert frame.shape == (72, 96, 3) and frame.dtype == np.uint8
            err = np.abs(frame.astype(float) - full[name].astype(float)).mean()
            assert err < 2.5, f"{name}: mean abs pixel error {err:.2f} against the resized frame"


def test_a_policy_input_of_another_aspect_gets_the_cameras_full_frame(twin):
    """The same fovy at another aspect would crop the view: a 32x40 model (aspect 1.25) on a
    4:3 camera is shown the full frame, which the policy resizes as it would a real camera's."""

    class OtherAspect(SizedAgent):
        input_size = (32, 40)

    agent = OtherAspect(twin.spec, twin)
    TwinRollout(twin, RolloutConfig(replan_horizon=0.4, max_duration=0.5)).run(agent, seed=5)
    assert agent.seen
    for shown, _ in agent.seen:
        for name, frame in shown.items():
            cam = next(c for c in twin.spec.cameras if c.name == name)
            assert frame.shape == (cam.height, cam.width, 3), name
