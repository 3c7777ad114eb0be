"""Twin steps per second in lockstep: physics only, both cameras with the shipped meshes, with
decimated render meshes, and decimated at a policy's input size; and what decimation does to
the pixels and to scripted success.

One step is one control period (``1 / control_hz`` of sim time: the arm is sent its target,
physics advances by whole physics steps). With cameras, each camera renders whenever its own
period (``1 / fps``) has elapsed in sim time, as the driver does. Every mode runs in the same
process, in ``--repeats`` interleaved rounds, and the fastest run of each counts (a shared
machine's load only ever slows a run down), so their ratios (to physics only, and to the
shipped meshes, the baseline) compare like with like.

    .venv/bin/python bench/sim.py [--seconds 5] [--repeats 3] [--robots so101 panda]
                                  [--tolerance 0.0002] [--far 0.001] [--small 72 96]
                                  [--scripted-seeds 10]

``--tolerance``: ``TwinConfig.render_mesh_tolerance`` (m) of the decimated modes (default: the
twin's default). ``--small``: the ``(h, w)`` asked of ``Twin.render`` in the small modes:
``_fine`` draws the 0.2 mm meshes in every camera; the other, the twin's default, draws the
``--far`` (m) copies in cameras fixed in the world (``TwinConfig.far_view_mesh_tolerance``).
A small frame's error against the full frame resized as training data is (what the policy
sees in a rollout against what it trained on) is measured per camera, far view on and off.
Fidelity, measured here too: the mean absolute pixel error (0-255, over all pixels and
channels) of decimated against shipped renders of the same states, per camera; and scripted
pick-and-place (``teleop/scripted.py``) on the same seeds with both, success and final joint
positions compared. Results: a table on stdout, ``bench/results/sim.json``,
``bench/results/sim.png`` (the speeds) and ``bench/results/render_compare.png`` (shipped
against decimated, front and wrist, per robot, with the absolute difference).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from bench.common import RESULTS, print_table, write_json


def _spec(robot: str):
    import yaml

    from robot.schema import RobotSpec

    path = Path(__file__).resolve().parent.parent / "dojo" / "conf" / "robot" / f"sim_{robot}.yaml"
    return RobotSpec.from_mapping(yaml.safe_load(path.read_text()))


def _twin(
    robot: str, *, render: bool, tolerance: float, far: float = 0.0, task: str = "pick_place"
):
    from robot.sim.config import TaskConfig, TwinConfig
    from robot.sim.twin import Twin

    config = TwinConfig(render=render, render_mesh_tolerance=tolerance, far_view_mesh_tolerance=far)
    return Twin(_spec(robot), config, TaskConfig(name=task))


def measure(
    robot: str,
    seconds: float,
    mode: str,
    *,
    render: bool,
    tolerance: float,
    far: float = 0.0,
    size: tuple[int, int] | None = None,
) -> dict:
    from robot.sim.meshes import drawn_mesh_faces

    twin = _twin(robot, render=render, tolerance=tolerance, far=far)
    spec = twin.spec
    try:
        twin.reset(seed=0)
        twin.arm.connect()
        twin.arm.enable()
        period = spec.control_period
        steps = round(seconds / period)
        next_frame = {cam.name: twin.time for cam in spec.cameras}
        frames = 0
        render_s = 0.0
        target = spec.home.copy()
        if render:  # build the renderers (GL contexts) outside the timed loop
            for cam in spec.cameras:
                twin.render(cam.name, size=size)
        start = time.perf_counter()
        for k in range(steps):
            target[0] = spec.home[0] + 0.3 * ((k % 200) / 200.0)  # keep the arm moving
            twin.arm.send(target)
            if render:
                for cam in spec.cameras:
                    if twin.time + 1e-9 >= next_frame[cam.name]:
                        t0 = time.perf_counter()
                        twin.render(cam.name, size=size)
                        render_s += time.perf_counter() - t0
                        frames += 1
                        next_frame[cam.name] += 1.0 / cam.fps
            twin.step(period)
        wall = time.perf_counter() - start
        drawn = drawn_mesh_faces(twin.model)
    finally:
        twin.close()
    shown = size or (spec.cameras[0].height, spec.cameras[0].width)
    return {
        "robot": robot,
        "mode": mode,
        "render_mesh_tolerance": tolerance,
        "far_view_mesh_tolerance": far,
        "mesh_faces_drawn": drawn if render else 0,
        "steps": steps,
        "frames": frames,
        "wall_s": wall,
        "ms_per_frame": 1e3 * render_s / frames if frames else 0.0,
        "steps_per_s": steps / wall,
        "realtime_factor": steps * period / wall,
        "control_hz": spec.control_hz,
        "cameras": [f"{c.name} {shown[1]}x{shown[0]}@{c.fps:g}" for c in spec.cameras]
        if render
        else [],
    }


def _drive(twin, seed: int) -> None:
    """Reset to ``seed``'s scene and, for seeds > 0, swing the arm for ``0.2 * seed`` s, so
    the states differ in arm pose as well as in the objects."""
    twin.reset(seed=seed)
    if not twin.arm.connected:
        twin.arm.connect()
        twin.arm.enable()
    target = twin.spec.home.copy()
    target[0] += 0.4
    target[2] -= 0.3
    twin.arm.send(target)
    for _ in range(10 * seed):
        twin.step(twin.spec.control_period)


def fidelity(robot: str, tolerance: float, seeds: int) -> tuple[dict, list[np.ndarray]]:
    """Mean absolute pixel error of decimated vs shipped renders of the same states, per
    camera (physics is identical, so both twins reach the same states); and, for seed 0, one
    row per camera: shipped, decimated, 4 x |difference|."""
    shipped = _twin(robot, render=True, tolerance=0.0)
    decimated = _twin(robot, render=True, tolerance=tolerance)
    errors: dict[str, list[float]] = {c.name: [] for c in shipped.spec.cameras}
    pictures: list[np.ndarray] = []
    try:
        for seed in range(seeds):
            _drive(shipped, seed)
            _drive(decimated, seed)
            for cam in errors:
                a = shipped.render(cam).astype(np.int16)
                b = decimated.render(cam).astype(np.int16)
                errors[cam].append(float(np.abs(a - b).mean()))
                if seed == 0:
                    diff = np.clip(4 * np.abs(a - b).max(axis=2), 0, 255).astype(np.uint8)
                    row = [a.astype(np.uint8), b.astype(np.uint8), np.repeat(diff[..., None], 3, 2)]
                    pictures.append(np.concatenate(row, axis=1))
    finally:
        shipped.close()
        decimated.close()
    summary = {c: {"mean": float(np.mean(e)), "max": float(np.max(e))} for c, e in errors.items()}
    return summary, pictures


def small_fidelity(
    robot: str, tolerance: float, far: float, size: tuple[int, int], seeds: int
) -> dict:
    """Mean absolute pixel error of a ``size`` frame asked of the twin against the full frame
    resized as training data is (``policy.data.resize_frames``), per camera, with the far
    view on (``far``) and off: what a policy sees in a rollout against what it trained on."""
    from policy.data import resize_frames

    out: dict[str, dict[str, float]] = {}
    for label, far_view in (("far_view", far), ("fine", 0.0)):
        twin = _twin(robot, render=True, tolerance=tolerance, far=far_view)
        errors: dict[str, list[float]] = {c.name: [] for c in twin.spec.cameras}
        try:
            for seed in range(seeds):
                _drive(twin, seed)
                for cam in errors:
                    full = resize_frames(twin.render(cam)[None], size)[0].astype(np.int16)
                    small = twin.render(cam, size=size).astype(np.int16)
                    errors[cam].append(float(np.abs(small - full).mean()))
        finally:
            twin.close()
        out[label] = {c: float(np.mean(e)) for c, e in errors.items()}
    return out


def scripted(robot: str, tolerance: float, seeds: int) -> dict:
    """Scripted pick-and-place on seeds 0..seeds-1 with the shipped and the decimated meshes:
    success per seed, and whether the final joint positions are bit-identical."""
    from teleop.scripted import ScriptedOperator
    from teleop.scripted_config import ScriptedConfig
    from teleop.scripted_rollout import rollout

    out: dict = {}
    final: dict[str, list[np.ndarray]] = {}
    for label, tol in (("shipped", 0.0), ("decimated", tolerance)):
        twin = _twin(robot, render=True, tolerance=tol)
        operator = ScriptedOperator(twin.spec, ScriptedConfig())
        try:
            out[label], final[label] = [], []
            for seed in range(seeds):
                out[label].append(bool(rollout(twin, operator, seed=seed).success))
                final[label].append(twin.data.qpos.copy())
        finally:
            twin.close()
    out["same_success"] = out["shipped"] == out["decimated"]
    out["same_final_qpos"] = all(
        np.array_equal(a, b) for a, b in zip(final["shipped"], final["decimated"], strict=True)
    )
    return out


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    robots = sorted({r["robot"] for r in results}, key=[r["robot"] for r in results].index)
    modes = sorted({r["mode"] for r in results}, key=[r["mode"] for r in results].index)
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        xs, ys = [], []
        for j, robot in enumerate(robots):
            for r in results:
                if r["robot"] == robot and r["mode"] == mode:
                    xs.append(j + i * width)
                    ys.append(r["realtime_factor"])
        bars = ax.bar(xs, ys, width, label=mode)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_yscale("log")
    ax.axhline(10.0, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(robots))], robots)
    ax.set_ylabel("x real time (log)")
    ax.set_title("twin in lockstep, both cameras (dashed: 10x)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    from robot.sim.config import DEFAULT_FAR_VIEW_MESH_TOLERANCE, DEFAULT_RENDER_MESH_TOLERANCE

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="sim seconds per measurement")
    ap.add_argument(
        "--repeats", type=int, default=3, help="rounds over all modes; the fastest run counts"
    )
    ap.add_argument("--robots", nargs="+", default=["so101", "panda"])
    ap.add_argument("--tolerance", type=float, default=DEFAULT_RENDER_MESH_TOLERANCE, help="m")
    ap.add_argument("--small", type=int, nargs=2, default=[72, 96], metavar=("H", "W"))
    ap.add_argument(
        "--far", type=float, default=DEFAULT_FAR_VIEW_MESH_TOLERANCE, help="m, far-view meshes"
    )
    ap.add_argument("--fidelity-seeds", type=int, default=3)
    ap.add_argument("--scripted-seeds", type=int, default=10, help="0: skip")
    args = ap.parse_args()
    small = (args.small[0], args.small[1])
    results, fid, small_fid, success, pictures = [], {}, {}, {}, []
    for robot in args.robots:
        modes = {
            "physics_only": dict(render=False, tolerance=0.0),
            "cameras_shipped": dict(render=True, tolerance=0.0),
            "cameras_decimated": dict(render=True, tolerance=args.tolerance),
            f"decimated_{small[1]}x{small[0]}_fine": dict(
                render=True, tolerance=args.tolerance, size=small
            ),
            f"decimated_{small[1]}x{small[0]}": dict(
                render=True, tolerance=args.tolerance, far=args.far, size=small
            ),
        }
        tries: dict[str, list[dict]] = {mode: [] for mode in modes}
        for _ in range(args.repeats):  # interleaved, so a burst of load hits every mode alike
            for mode, kwargs in modes.items():
                tries[mode].append(measure(robot, args.seconds, mode, **kwargs))
        best = {
            mode: {
                **max(runs, key=lambda r: r["steps_per_s"]),
                "all_realtime_factors": [r["realtime_factor"] for r in runs],
            }
            for mode, runs in tries.items()
        }
        runs = list(best.values())
        base = best["cameras_shipped"]["steps_per_s"]
        physics = best["physics_only"]["steps_per_s"]
        for r in runs:
            r["vs_shipped"] = r["steps_per_s"] / base
            r["vs_physics"] = r["steps_per_s"] / physics
        results += runs
        fid[robot], pics = fidelity(robot, args.tolerance, args.fidelity_seeds)
        small_fid[robot] = small_fidelity(
            robot, args.tolerance, args.far, small, args.fidelity_seeds
        )
        pictures += pics
        if args.scripted_seeds:
            success[robot] = scripted(robot, args.tolerance, args.scripted_seeds)
    print_table(
        f"twin in lockstep, {args.seconds:g} s of sim time each, best of {args.repeats}, "
        f"render_mesh_tolerance={args.tolerance:g} m "
        f"(MUJOCO_GL={os.environ.get('MUJOCO_GL')})",
        ["robot", "mode", "mesh faces", "ms/frame", "steps/s", "x real time", "vs shipped"],
        [
            [
                r["robot"],
                r["mode"],
                r["mesh_faces_drawn"],
                r["ms_per_frame"],
                r["steps_per_s"],
                r["realtime_factor"],
                r["vs_shipped"],
            ]
            for r in results
        ],
    )
    print_table(
        f"pixel error, decimated vs shipped, same states ({args.fidelity_seeds} seeds; 0-255)",
        ["robot", "camera", "mean abs error", "worst state"],
        [[rb, c, e["mean"], e["max"]] for rb, cams in fid.items() for c, e in cams.items()],
    )
    print_table(
        f"pixel error of a {small[1]}x{small[0]} frame against the full frame resized "
        f"(what the policy trained on; {args.fidelity_seeds} seeds; 0-255)",
        ["robot", "camera", f"far view {args.far:g} m", "fine meshes only"],
        [[rb, c, e["far_view"][c], e["fine"][c]] for rb, e in small_fid.items() for c in e["fine"]],
    )
    if success:
        print_table(
            f"scripted pick_place, seeds 0-{args.scripted_seeds - 1}",
            ["robot", "shipped ok", "decimated ok", "same per seed", "same final qpos"],
            [
                [
                    rb,
                    sum(s["shipped"]),
                    sum(s["decimated"]),
                    s["same_success"],
                    s["same_final_qpos"],
                ]
                for rb, s in success.items()
            ],
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    _plot(results, RESULTS / "sim.png")
    import imageio.v3 as iio

    iio.imwrite(RESULTS / "render_compare.png", np.concatenate(pictures, axis=0))
    print(f"wrote {RESULTS / 'sim.png'} and {RESULTS / 'render_compare.png'}")
    write_json(
        "sim",
        {
            "params": {**vars(args), "mujoco_gl": os.environ.get("MUJOCO_GL")},
            "results": results,
            "pixel_error": fid,
            "small_frame_pixel_error": small_fid,
            "scripted_pick_place": success,
            "render_compare": "rows: robot x camera (front, wrist); columns: shipped, decimated, "
            "4 x |difference|",
        },
    )


if __name__ == "__main__":
    main()
