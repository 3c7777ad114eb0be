"""``dojo train policy`` and ``dojo eval policy``.

    dojo train policy store=demos.zarr out=runs/policy1 [train.steps=3000 train.seconds=600
                      train.eval_every=500 train.model.head=flow train.weight_decay=0 ...]
    dojo eval policy checkpoint=runs/policy1 episodes=50 [evaluate.seed=100000 task=push ...]

``train.*`` is :class:`policy.config.PolicyTrainConfig` and ``train.model.*`` the compact
VLA's :class:`policy.config.VLAConfig`, key for key; ``evaluate.*`` is
:class:`policy.config.PolicyEvalConfig`. ``checkpoint=`` is short for ``policy.checkpoint=``.
``train`` resumes when ``out`` already holds a run of the same model; it evaluates in the twin
every ``train.eval_every`` steps (``train.eval_episodes`` episodes from ``evaluate.seed``) and
writes ``out/training.png``. ``eval`` prints the success rate with its 95% interval and a
breakdown per instruction, and writes ``eval.json`` and MP4s of a few failures next to the
checkpoint (or to ``out=``). Both run in process, in the twin, with the same control path as
the graph.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from dojo import conf
from dojo.commands import TWIN_READS, Command, given


def _twin(cfg):
    from dojo.collect import make_twin

    return make_twin(conf.robot_spec(cfg), conf.task_config(cfg), conf.twin_config(cfg))


def _rollout_config(cfg):
    from policy.rollout import RolloutConfig

    return RolloutConfig(
        executor=conf.executor_config(cfg),
        replan_horizon=float(cfg.policy.replan_horizon),
        record_fps=cfg.recorder.fps,
    )


def _load_policy(cfg, checkpoint: str, text=None):
    """The policy at ``checkpoint``, checked against the robot; a PolicyError names why."""
    from policy.registry import load_policy

    spec = conf.robot_spec(cfg)
    policy = load_policy(
        cfg.policy.backend,
        checkpoint,
        joint_names=spec.joint_names,
        cameras=[c.name for c in spec.cameras],
        kind=cfg.policy.kind,
        device=cfg.policy.device,
        camera_map=dict(cfg.policy.camera_map),
        fps=float(cfg.policy.fps),
        tokenizer=str(cfg.policy.tokenizer),
        text=text,
    )
    policy.check(spec)
    return policy


def train(overrides: list[str]) -> int:
    from policy.config import Inference
    from policy.evaluate import evaluate
    from policy.models.encoders import TextEncoder
    from policy.train import Trainer

    cfg = TRAIN.load(overrides)
    if not cfg.store:
        print("dojo train policy: say which demonstrations, e.g. store=demos.zarr", file=sys.stderr)
        return 2
    spec = conf.robot_spec(cfg)
    config = conf.section(cfg, "train")
    cameras = list(config.model.cameras) or [c.name for c in spec.cameras]
    config = dataclasses.replace(
        config, stores=[s for s in str(cfg.store).split(",") if s], out=cfg.out, seed=cfg.seed
    )
    from episodes.store import EpisodeStore

    for store in config.stores:  # a missing store fails now, before the text encoder loads
        EpisodeStore.open(store)
    eval_config = dataclasses.replace(  # instant inference: training time, not latency
        conf.section(cfg, "evaluate"),
        episodes=config.eval_episodes,
        failure_videos=0,
        inference=Inference.instant,
    )
    text = TextEncoder()
    twin = None

    def eval_in_twin(checkpoint: Path) -> dict:
        nonlocal twin
        twin = twin or _twin(cfg)
        policy = _load_policy(cfg, str(checkpoint), text)
        result = evaluate(policy, twin, eval_config, _rollout_config(cfg), progress=False)
        return {k: result[k] for k in ("success_rate", "ci_low", "ci_high", "episodes")}

    try:
        trainer = Trainer(
            config,
            joint_names=list(spec.joint_names),
            cameras=cameras,
            evaluate=eval_in_twin,
            text=text,
        )
        summary = trainer.run()
    finally:
        if twin is not None:
            twin.close()
    print(
        f"trained {summary['steps']} steps in {summary['seconds']:.0f} s "
        f"(stopped by {summary['stopped_by']}); loss {summary['final_loss']:.4f}\n"
        f"checkpoint: {summary['checkpoint']}\nplot: {Path(cfg.out) / 'training.png'}"
    )
    return 0


def evaluate_cmd(overrides: list[str]) -> int:
    import torch

    from policy.evaluate import evaluate, format_summary
    from policy.train import default_threads

    cfg = EVAL.load(overrides)
    torch.set_num_threads(int(cfg.policy.threads) or default_threads())
    checkpoint = cfg.policy.checkpoint
    if not checkpoint:
        print("dojo eval policy: say which policy, e.g. checkpoint=runs/policy1", file=sys.stderr)
        return 2
    ckpt = Path(checkpoint)
    if cfg.policy.backend == "compact" and not ckpt.exists():  # before the text encoder loads
        raise conf.ConfigError(
            f"config 'policy.checkpoint': {ckpt} does not exist (a `dojo train policy` out= "
            "directory, or its checkpoint/)"
        )
    if cfg.policy.backend == "compact" and (ckpt / "checkpoint").is_dir():
        ckpt = ckpt / "checkpoint"  # a training run's directory: its latest weights
    policy = _load_policy(cfg, str(ckpt))
    explicit_out = given(overrides, "out")
    out = Path(cfg.out) if explicit_out else (ckpt.parent if ckpt.is_dir() else Path(cfg.out))
    out = out / "eval"
    config = dataclasses.replace(conf.section(cfg, "evaluate"), episodes=cfg.episodes)
    twin = _twin(cfg)
    try:
        summary = evaluate(policy, twin, config, _rollout_config(cfg), out=out)
    finally:
        twin.close()
    print(format_summary(summary))
    print(f"report: {out / 'eval.json'}")
    return 0


TRAIN = Command(
    "train policy",
    train,
    reads=(
        *TWIN_READS,
        "executor",
        "policy",
        "recorder",
        "train",
        "evaluate",
        "store",
        "out",
        "seed",
    ),
    usage="Fine-tune the compact VLA on the demonstrations in store= (comma-separated stores) "
    "into out=.\nseed= seeds the run; periodic evaluation in the twin: train.eval_every, "
    "train.eval_episodes, evaluate.seed.",
)
EVAL = Command(
    "eval policy",
    evaluate_cmd,
    reads=(*TWIN_READS, "executor", "policy", "recorder", "evaluate", "episodes", "out"),
    usage="Success rate of policy.checkpoint= in the twin over episodes= episodes, seeds "
    "evaluate.seed, evaluate.seed+1, ...",
    aliases={"checkpoint": "policy.checkpoint"},
)
COMMANDS = (TRAIN, EVAL)
