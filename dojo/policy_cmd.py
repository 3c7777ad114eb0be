"""``dojo train policy`` and ``dojo eval policy``.

    dojo train policy store=demos.zarr out=runs/policy1 [train.steps=3000 train.seconds=600
                      train.eval_every=500 train.head=flow ...]
    dojo eval policy checkpoint=runs/policy1 episodes=50 [evaluate.seed=100000 task=push ...]

``checkpoint=`` is short for ``policy.checkpoint=``. ``train`` resumes when ``out`` already holds
a run of the same model; it evaluates in the twin every ``train.eval_every`` steps and writes
``out/training.png``. ``eval`` prints the success rate with its 95% interval and a breakdown per
instruction, and writes ``eval.json`` and MP4s of a few failures next to the checkpoint (or to
``out=``). Both run in process, in the twin, with the same control path as the graph.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dojo import conf


def _alias(overrides: list[str]) -> list[str]:
    return [
        "policy.checkpoint=" + o.split("=", 1)[1] if o.startswith("checkpoint=") else o
        for o in overrides
    ]


def _load(overrides: list[str], command: str):
    try:
        return conf.load(_alias(overrides))
    except conf.ConfigError as err:
        print(f"dojo {command}: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def _twin(cfg):
    from dojo.collect import make_twin

    return make_twin(conf.robot_spec(cfg), conf.task_config(cfg), cfg.sim.physics_dt, cfg.sim)


def _rollout_config(cfg, inference: str | None = None):
    from policy.rollout import RolloutConfig

    return RolloutConfig(
        executor=conf.executor_config(cfg),
        replan_horizon=float(cfg.policy.replan_horizon),
        inference=inference or cfg.evaluate.inference,
        record_fps=cfg.recorder.fps,
    )


def _load_policy(cfg, checkpoint: str, text=None):
    from policy.base import PolicyError
    from policy.registry import load_policy

    spec = conf.robot_spec(cfg)
    try:
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
    except PolicyError as err:
        print(f"dojo: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    return policy


def train(overrides: list[str]) -> int:
    from policy.data import DataError
    from policy.evaluate import EvalConfig, evaluate
    from policy.models.encoders import InstructionError, TextEncoder
    from policy.train import TrainConfig, Trainer, TrainError

    cfg = _load(overrides, "train policy")
    if not cfg.store:
        print("dojo train policy: say which demonstrations, e.g. store=demos.zarr", file=sys.stderr)
        return 2
    spec = conf.robot_spec(cfg)
    tr = cfg.train
    cameras = list(tr.cameras) or [c.name for c in spec.cameras]
    text = TextEncoder()
    twin = None

    def eval_in_twin(checkpoint: Path) -> dict:
        nonlocal twin
        twin = twin or _twin(cfg)
        policy = _load_policy(cfg, str(checkpoint), text)
        result = evaluate(
            policy,
            twin,
            EvalConfig(episodes=tr.eval_episodes, seed=cfg.evaluate.seed, failure_videos=0),
            _rollout_config(cfg, "instant"),
            progress=False,
        )
        return {k: result[k] for k in ("success_rate", "ci_low", "ci_high", "episodes")}

    config = TrainConfig(
        stores=[s for s in str(cfg.store).split(",") if s],
        out=cfg.out,
        steps=tr.steps,
        seconds=tr.seconds,
        batch_size=tr.batch_size,
        lr=tr.lr,
        eval_every=tr.eval_every,
        checkpoint_every=tr.checkpoint_every,
        max_episodes=tr.max_episodes or None,
        augment_pad=tr.augment_pad,
        start_weight=tr.start_weight,
        threads=tr.threads,
        seed=cfg.seed,
        model={"head": tr.head, "horizon": tr.horizon},
    )
    try:
        trainer = Trainer(
            config,
            joint_names=list(spec.joint_names),
            cameras=cameras,
            evaluate=eval_in_twin,
            text=text,
        )
        summary = trainer.run()
    except (DataError, TrainError, InstructionError) as err:
        print(f"dojo train policy: {err}", file=sys.stderr)
        return 2
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

    from policy.evaluate import EvalConfig, evaluate, format_summary
    from policy.train import default_threads

    cfg = _load(overrides, "eval policy")
    torch.set_num_threads(int(cfg.policy.threads) or default_threads())
    checkpoint = cfg.policy.checkpoint
    if not checkpoint:
        print("dojo eval policy: say which policy, e.g. checkpoint=runs/policy1", file=sys.stderr)
        return 2
    ckpt = Path(checkpoint)
    if cfg.policy.backend == "compact" and (ckpt / "checkpoint").is_dir():
        ckpt = ckpt / "checkpoint"  # a training run's directory: its latest weights
    policy = _load_policy(cfg, str(ckpt))
    explicit_out = any(o.startswith("out=") for o in overrides)
    out = Path(cfg.out) if explicit_out else (ckpt.parent if ckpt.is_dir() else Path(cfg.out))
    out = out / "eval"
    twin = _twin(cfg)
    try:
        summary = evaluate(
            policy,
            twin,
            EvalConfig(
                episodes=cfg.episodes,
                seed=cfg.evaluate.seed,
                failure_videos=cfg.evaluate.failure_videos,
                video_camera=cfg.evaluate.camera or cfg.robot.cameras[0].name,
            ),
            _rollout_config(cfg),
            out=out,
        )
    finally:
        twin.close()
    print(format_summary(summary))
    print(f"report: {out / 'eval.json'}")
    return 0


def main(argv: list[str]) -> int:
    """``dojo train|eval policy ...`` (argv starts with the verb)."""
    verb, what, rest = argv[0], argv[1] if len(argv) > 1 else "", argv[2:]
    if what != "policy":
        print(f"dojo {verb}: expected 'policy' or 'critic', got {what!r}", file=sys.stderr)
        return 2
    return train(rest) if verb == "train" else evaluate_cmd(rest)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
