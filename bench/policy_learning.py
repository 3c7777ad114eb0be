"""Success in the twin after supervised fine-tuning: the compact VLA against LeRobot's ACT.

On the same N (default 100) successful scripted pick-and-place demos, all three colours: the
compact VLA is trained once per budget (default 5, 10 and 20 minutes of wall clock, each a
fresh run, because its learning rate decays over the budget: a 5-minute snapshot of a 20-minute
run is not what a 5-minute run gives), and ACT once for the longest budget with snapshots at
the others (ACT trains at a constant rate, so its snapshots are the shorter runs' models). Every
model is rolled out on the same held-out scenes (seeds far from the training seeds) and scored
with 95% Wilson intervals, per colour. The compact VLA runs the recipe of ``dojo train policy``
(the ``PolicyTrainConfig`` and ``VLAConfig`` defaults); what was tried to choose it is in
``bench/README.md``.

Which cube a policy went for: a policy trained for minutes on a CPU often grasps but misses
the bin, so besides success each episode records which cube the gripper went for: the cube
its fixed jaw's tip came closest to over the episode, if that closest approach is within
``REACH_M`` ("reached"; the scripted demonstrator comes within 2 cm of the named cube and
stays 6 cm or more from the others). Reaching the named cube is the first half of following the
instruction; with three cubes, chance is about one in three.

Instruction following: the models trained on the most demos are rolled out again on the same
scenes with the colour in the instruction swapped (the scene's goal is red, the policy is told
"green", and so on). "Told cube reached" counts episodes where the gripper first went for the
cube it was *told* about, "told cube in bin" where that cube ended in the bin. A policy that
reads the words goes for the told colour; ACT has no language input, so it can only do what the
scene looked like in training: the told cube by chance.

    .venv/bin/python bench/policy_learning.py [--demos 100] [--budgets 300 600 1200]
        [--episodes 50] [--data STORE] [--skip-act] [--eval-only]

Demos are collected once with ``dojo collect`` (seeds 0..; the configured operator, with its
wobble ``teleop.scripted.noise_std``) into ``--data`` and reused. Results:
a table on stdout, ``bench/results/policy_learning.json``, ``bench/results/policy_learning.png``
(success against training time for both models, and both learning curves) and the trained
checkpoints under ``runs/bench/policy_learning/``. About 75 minutes on a 2-core CPU with the
defaults (the budgets are training time; collection and evaluation come on top).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MUJOCO_GL", "egl")

from bench.common import print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
SWAP = {"red": "green", "green": "blue", "blue": "red"}
REACH_M = 0.04  # closest approach of the gripper tip to a cube centre that counts as "went for it"


def default_demos_store(cfg) -> str:
    """Where the benchmarks keep their demos: named after the operator's wobble, so demos
    recorded with another ``teleop.scripted.noise_std`` are never reused by mistake."""
    from dojo import conf

    noise = conf.scripted_config(cfg).noise_std
    return str(ROOT / f"runs/bench/demos_pick_place_noise{noise:g}.zarr")


def ensure_demos(cfg, url: str, n: int) -> None:
    from dojo import conf
    from dojo.collect import collect_successful, make_twin, recorded

    if recorded(url)[0] >= n:
        return
    twin = make_twin(conf.robot_spec(cfg), conf.task_config(cfg))
    try:
        collect_successful(url, twin, conf.scripted_config(cfg), successful=n)
    finally:
        twin.close()


def swapped(instruction: str) -> str:
    for color, other in SWAP.items():
        if f" {color} " in instruction:
            return instruction.replace(f" {color} ", f" {other} ")
    raise ValueError(f"no colour to swap in {instruction!r}")


def evaluate_policy(policy, twin, cfg, episodes: int, seed: int, swap: bool = False) -> dict:
    import numpy as np
    from tqdm import tqdm

    from policy.evaluate import Retold, summarize, wilson_interval
    from policy.rollout import RolloutConfig, TwinRollout
    from robot.sim.tasks import parse_instruction

    runner = TwinRollout(twin, RolloutConfig(replan_horizon=float(cfg.policy.replan_horizon)))
    results, followed, reached_told, reached_scene = [], 0, 0, 0
    site = twin.model.site(twin.spec.ee_site).id
    cubes = [f"cube_{c}" for c in twin.task_config.colors]
    closest: dict[str, float] = {}

    def track() -> None:
        tip = twin.data.site_xpos[site]
        objects = twin.objects()
        for name in cubes:
            d = float(np.linalg.norm(objects[name].position - tip))
            closest[name] = min(closest.get(name, np.inf), d)

    def went_for() -> str | None:
        name = min(closest, key=closest.get)
        return name if closest[name] < REACH_M else None

    agent = Retold(policy, swapped) if swap else policy
    bar = tqdm(total=episodes, desc="evaluating", unit="episode", disable=None)
    for i in range(episodes):
        closest.clear()
        r = runner.run(agent, seed=seed + i, on_tick=track)
        target = went_for()
        results.append(r)
        scene_goal = parse_instruction(r.instruction)
        reached_scene += int(target == scene_goal.target)
        if swap:
            told = parse_instruction(swapped(r.instruction))
            setup = dataclasses.replace(twin.setup, goal=told)
            followed += int(twin.task.success(setup, twin.objects()))
            reached_told += int(target == told.target)
        bar.set_postfix_str(
            f"{sum(x.success for x in results)} scene goals, {followed} told goals; "
            f"reached scene cube {reached_scene}, told {reached_told}"
        )
        bar.update()
    bar.close()
    s = summarize(results)
    s["reached_scene_cube"] = reached_scene
    s["reached_scene_cube_ci"] = list(wilson_interval(reached_scene, episodes))
    if swap:
        s["reached_told_cube"] = reached_told
        s["reached_told_cube_ci"] = list(wilson_interval(reached_told, episodes))
        lo, hi = wilson_interval(followed, episodes)
        s["followed"] = followed
        s["followed_rate"] = followed / episodes
        s["followed_ci"] = [lo, hi]
    s.pop("per_instruction_raw", None)
    return s


def per_colour(summary: dict) -> dict[str, str]:
    out = {}
    for ins, v in summary["per_instruction"].items():
        color = next((c for c in SWAP if f" {c} " in ins), ins)
        out[color] = f"{v['successes']}/{v['episodes']}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demos", type=int, default=100, help="successful scripted demos to train on")
    ap.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        default=[300.0, 600.0, 1200.0],
        help="training seconds: one compact-VLA run per budget, ACT snapshots at each",
    )
    ap.add_argument("--episodes", type=int, default=50, help="evaluation episodes per model")
    ap.add_argument("--seed", type=int, default=100_000, help="first evaluation seed")
    ap.add_argument(
        "--data",
        default="",
        help="the demos' store (default: runs/bench/, named after the operator's noise_std, so "
        "demos recorded with another wobble are never reused by mistake)",
    )
    ap.add_argument("--out", default=str(ROOT / "runs/bench/policy_learning"))
    ap.add_argument("--skip-act", action="store_true")
    ap.add_argument("--eval-only", action="store_true", help="evaluate the checkpoints in --out")
    ap.add_argument(
        "--reuse-act", action="store_true", help="keep ACT checkpoints an earlier run trained"
    )
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads for training (0: measured per run)"
    )
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    args = ap.parse_args()
    if args.plot_only:
        import json

        from bench.common import RESULTS

        saved = json.loads((RESULTS / "policy_learning.json").read_text())
        _plot(saved, saved["budgets_s"], args)
        return
    budgets = sorted(set(args.budgets))

    import torch

    from dojo import conf
    from dojo.collect import make_twin
    from policy.compact import CompactVLAPolicy
    from policy.models.encoders import TextEncoder
    from policy.train import default_threads

    # training: --threads, or each trainer measures the fastest count (policy.threads), the same
    # rule for both models; evaluation: a fixed count, the same for every model (each trainer
    # hands it back when it ends)
    eval_threads = args.threads or default_threads()
    torch.set_num_threads(eval_threads)
    cfg = conf.load([])
    args.data = args.data or default_demos_store(cfg)
    spec = conf.robot_spec(cfg)
    cameras = [c.name for c in spec.cameras]
    ensure_demos(cfg, args.data, args.demos)
    text = TextEncoder()
    twin = make_twin(spec, conf.task_config(cfg))
    out = Path(args.out)
    rows: list = []
    results: dict = {"compact": {}, "act": {}, "swapped": {}}
    t_bench = time.monotonic()
    try:
        # -- the compact VLA: one fresh run per budget (its schedule decays over the budget) ---
        for budget in budgets:
            run_dir = out / f"compact_{budget:.0f}s"
            t0 = time.monotonic()
            if args.eval_only:
                summary = _trained(run_dir)
            else:
                summary = _train_compact(args, run_dir, args.demos, budget, spec, cameras, text)
            vla = CompactVLAPolicy.load(run_dir / "checkpoint", text)
            print(f"compact VLA, {budget:.0f} s: evaluating", file=sys.stderr)
            ev = evaluate_policy(vla, twin, cfg, args.episodes, args.seed)
            results["compact"][f"{budget:.0f}"] = {
                "train": summary,
                "eval": ev,
                "history": _history(run_dir),
                "wall_s": time.monotonic() - t0,
            }
            rows.append(_row("compact VLA", budget, summary, ev))
        # -- ACT: one run of the longest budget, snapshots at the others -----------------------
        if not args.skip_act:
            from policy.lerobot_adapters import LeRobotPolicy, train_act

            act_dirs = {b: out / f"act_{b:.0f}s" for b in budgets}
            t0 = time.monotonic()
            if not (
                args.eval_only or (args.reuse_act and all(d.exists() for d in act_dirs.values()))
            ):
                import shutil

                for d in act_dirs.values():
                    shutil.rmtree(d, ignore_errors=True)
                train_act(
                    args.data,
                    act_dirs[budgets[-1]],
                    seconds_budget=budgets[-1],
                    max_episodes=args.demos,
                    cameras=cameras,
                    image_size=IMAGE_SIZE,
                    chunk_size=10,
                    seed=0,
                    snapshots={b: act_dirs[b] for b in budgets[:-1]},
                    threads=args.threads,
                )
            for budget in budgets:
                act = LeRobotPolicy.load(
                    str(act_dirs[budget]), joint_names=spec.joint_names, cameras=cameras
                )
                print(f"ACT, {budget:.0f} s: evaluating", file=sys.stderr)
                ev_act = evaluate_policy(act, twin, cfg, args.episodes, args.seed)
                act_train = _act_train(act_dirs[budget])
                results["act"][f"{budget:.0f}"] = {"train": act_train, "eval": ev_act}
                rows.append(_row("LeRobot ACT", budget, act_train, ev_act))
            results["act_wall_s"] = time.monotonic() - t0
        # -- instruction following: swapped colours, the longest-trained models ----------------
        swap_rows = []
        vla = CompactVLAPolicy.load(out / f"compact_{budgets[-1]:.0f}s" / "checkpoint", text)
        print("compact VLA, swapped colours", file=sys.stderr)
        sw = evaluate_policy(vla, twin, cfg, args.episodes, args.seed, swap=True)
        results["swapped"]["compact"] = sw
        swap_rows.append(_swap_row("compact VLA", sw))
        if not args.skip_act:
            from policy.lerobot_adapters import LeRobotPolicy

            act = LeRobotPolicy.load(
                str(out / f"act_{budgets[-1]:.0f}s"), joint_names=spec.joint_names, cameras=cameras
            )
            print("ACT, swapped colours", file=sys.stderr)
            sw_act = evaluate_policy(act, twin, cfg, args.episodes, args.seed, swap=True)
            results["swapped"]["act"] = sw_act
            swap_rows.append(_swap_row("LeRobot ACT", sw_act))
    finally:
        twin.close()

    print_table(
        f"pick_place success after supervised fine-tuning on {args.demos} demos "
        f"({args.episodes} held-out scenes, seeds {args.seed}..)",
        [
            "policy",
            "train min",
            "train steps",
            "success",
            "95% CI",
            "red",
            "green",
            "blue",
            "named cube reached",
            "infer p50 ms",
        ],
        rows,
    )
    print_table(
        f"instruction following: colours swapped, {budgets[-1] / 60:.0f} min of training",
        [
            "policy",
            "told cube reached",
            "95% CI",
            "scene's cube reached",
            "told cube in bin",
            "scene's cube in bin",
        ],
        swap_rows,
    )
    sw = results["swapped"]["compact"]
    ratio = sw["reached_told_cube"] / max(sw["reached_scene_cube"], 1)
    print(
        f"compact VLA told/scene cube reached: {ratio:.1f}x (target >= 3x); told cube in bin "
        f"{sw['followed_rate']:.2f} (target >= 0.30)"
    )
    write_json(
        "policy_learning",
        {
            "demos": args.demos,
            "budgets_s": budgets,
            "episodes": args.episodes,
            "eval_seed": args.seed,
            "eval_torch_threads": eval_threads,
            "wall_s": time.monotonic() - t_bench,
            **results,
        },
    )
    _plot(results, budgets, args)


def _plot(results: dict, budgets: list[float], args) -> None:
    """Success against training time (both models, Wilson bands) and both loss curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for name, label, colour in (("compact", "compact VLA", "C0"), ("act", "LeRobot ACT", "C1")):
        pts = [
            (b / 60, results[name][f"{b:.0f}"]["eval"])
            for b in budgets
            if f"{b:.0f}" in results[name]
        ]
        if not pts:
            continue
        x = [p[0] for p in pts]
        ax[0].plot(x, [p[1]["success_rate"] for p in pts], "o-", color=colour, label=label)
        ax[0].fill_between(
            x,
            [p[1]["ci_low"] for p in pts],
            [p[1]["ci_high"] for p in pts],
            color=colour,
            alpha=0.15,
        )
    ax[0].axhline(0.5, color="grey", ls=":", lw=1)
    ax[0].set(
        xlabel="training time (min, this machine)",
        ylabel=f"success on {args.episodes} held-out scenes",
        ylim=(-0.02, 1.02),
        title=f"pick_place, {args.demos} demos",
    )
    ax[0].legend()
    longest = f"{budgets[-1]:.0f}"
    hist = results["compact"].get(longest, {}).get("history", [])
    if hist:
        ax[1].plot(
            [h["seconds"] / 60 for h in hist],
            [h["loss"] for h in hist],
            label="compact VLA (L1, normalised)",
        )
    act = results["act"].get(longest, {}).get("train", {})
    if act.get("loss"):  # [[step, mean loss], ...]; steps to minutes at the run's mean rate
        steps = max(p[0] for p in act["loss"])
        ax[1].plot(
            [act["seconds"] / 60 * p[0] / steps for p in act["loss"]],
            [p[1] for p in act["loss"]],
            label="ACT (L1 + KL)",
        )
    ax[1].set(
        xlabel="training time (min)", ylabel="training loss", yscale="log", title="learning curves"
    )
    ax[1].legend()
    fig.tight_layout()
    from bench.common import RESULTS

    path = RESULTS / "policy_learning.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


IMAGE_SIZE = (72, 96)  # the compact VLA's default input (VLAConfig.image_size), given to ACT too


def _train_compact(args, run_dir: Path, n: int, budget: float, spec, cameras, text) -> dict:
    """The default recipe of ``dojo train policy`` (PolicyTrainConfig and VLAConfig defaults), with
    this benchmark's budget, demos and image size."""
    import shutil

    from policy.config import PolicyTrainConfig, VLAConfig
    from policy.train import Trainer

    shutil.rmtree(run_dir, ignore_errors=True)
    trainer = Trainer(
        PolicyTrainConfig(
            stores=[args.data],
            out=str(run_dir),
            steps=1_000_000,
            seconds=budget,
            max_episodes=n,
            checkpoint_every=0,
            seed=0,
            threads=args.threads,
            model=VLAConfig(image_size=IMAGE_SIZE),
        ),
        joint_names=list(spec.joint_names),
        cameras=cameras,
        text=text,
    )
    return trainer.run()


def _trained(run_dir: Path) -> dict:
    """What an earlier run of this benchmark trained (``--eval-only``)."""
    import json

    state = json.loads((run_dir / "train_state.json").read_text())
    return {"steps": state["step"], "seconds": state["elapsed"]}


def _history(run_dir: Path) -> list[dict]:
    import json

    state = json.loads((run_dir / "train_state.json").read_text())
    return [h for h in state.get("history", []) if "loss" in h]


def _act_train(path: Path) -> dict:
    from policy.lerobot_adapters.adapter import read_sidecar

    side = (read_sidecar(path) or {}).get("train", {})
    return {
        "steps": side.get("steps"),
        "seconds": side.get("seconds"),
        "loss": side.get("loss", []),
    }


def _row(name: str, budget: float, train: dict, ev: dict) -> list:
    colours = {c: "-" for c in SWAP}
    colours.update(per_colour(ev))
    return [
        name,
        f"{budget / 60:.0f}",
        train.get("steps"),
        f"{ev['successes']}/{ev['episodes']} = {ev['success_rate']:.2f}",
        f"{ev['ci_low']:.2f}-{ev['ci_high']:.2f}",
        colours["red"],
        colours["green"],
        colours["blue"],
        f"{ev['reached_scene_cube']}/{ev['episodes']}",
        round(ev["inference_p50_ms"] or float("nan"), 1),
    ]


def _swap_row(name: str, s: dict) -> list:
    n = s["episodes"]
    return [
        name,
        f"{s['reached_told_cube']}/{n} = {s['reached_told_cube'] / n:.2f}",
        f"{s['reached_told_cube_ci'][0]:.2f}-{s['reached_told_cube_ci'][1]:.2f}",
        f"{s['reached_scene_cube']}/{n}",
        f"{s['followed']}/{n}",
        f"{s['successes']}/{n}",
    ]


if __name__ == "__main__":
    main()
