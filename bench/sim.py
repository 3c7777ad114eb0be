"""Twin steps per second in lockstep: both cameras rendering at their rate, and physics only.

One step is one control period (``1 / control_hz`` of sim time: the arm is sent its target,
physics advances by whole physics steps). With cameras, each camera renders whenever its own
period (``1 / fps``) has elapsed in sim time, as the driver does. Both modes run in the same
process, one after the other, so their ratio compares like with like.

    .venv/bin/python bench/sim.py [--seconds 10] [--robots so101 panda]

``--seconds`` is sim time per measurement. Results: a table on stdout and
``bench/results/sim.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MUJOCO_GL", "egl")

from bench.common import print_table, write_json


def _spec(robot: str):
    import yaml

    from robot.schema import RobotSpec

    path = Path(__file__).resolve().parent.parent / "dojo" / "conf" / "robot" / f"sim_{robot}.yaml"
    return RobotSpec.from_mapping(yaml.safe_load(path.read_text()))


def measure(robot: str, seconds: float, render: bool) -> dict:
    from robot.sim.tasks import TaskConfig
    from robot.sim.twin import Twin, TwinConfig

    spec = _spec(robot)
    twin = Twin(spec, TwinConfig(model=robot, render=render), TaskConfig())
    try:
        twin.reset(seed=0)
        twin.arm.connect()
        twin.arm.enable()
        period = spec.control_period
        steps = round(seconds / period)
        next_frame = {cam.name: twin.time for cam in spec.cameras}
        frames = 0
        target = spec.home.copy()
        if render:  # build the renderers (GL contexts) outside the timed loop
            for cam in spec.cameras:
                twin.render(cam.name)
        start = time.perf_counter()
        for k in range(steps):
            target[0] = spec.home[0] + 0.3 * ((k % 200) / 200.0)  # keep the arm moving
            twin.arm.send(target)
            if render:
                for cam in spec.cameras:
                    if twin.time + 1e-9 >= next_frame[cam.name]:
                        twin.render(cam.name)
                        frames += 1
                        next_frame[cam.name] += 1.0 / cam.fps
            twin.step(period)
        wall = time.perf_counter() - start
    finally:
        twin.close()
    return {
        "robot": robot,
        "mode": "cameras" if render else "physics_only",
        "steps": steps,
        "frames": frames,
        "wall_s": wall,
        "steps_per_s": steps / wall,
        "realtime_factor": steps * period / wall,
        "control_hz": spec.control_hz,
        "cameras": [f"{c.name} {c.width}x{c.height}@{c.fps:g}" for c in spec.cameras]
        if render
        else [],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="sim seconds per measurement")
    ap.add_argument("--robots", nargs="+", default=["so101", "panda"])
    args = ap.parse_args()
    results, ratios = [], {}
    for robot in args.robots:
        physics = measure(robot, args.seconds, render=False)
        cameras = measure(robot, args.seconds, render=True)
        results += [physics, cameras]
        ratios[robot] = cameras["steps_per_s"] / physics["steps_per_s"]
    print_table(
        f"twin in lockstep, {args.seconds:g} s of sim time each "
        f"(MUJOCO_GL={os.environ.get('MUJOCO_GL')})",
        ["robot", "mode", "steps/s", "x real time", "frames", "wall s"],
        [
            [
                r["robot"],
                r["mode"],
                r["steps_per_s"],
                r["realtime_factor"],
                r["frames"],
                r["wall_s"],
            ]
            for r in results
        ],
    )
    for robot, ratio in ratios.items():
        print(f"  {robot}: cameras / physics only = {ratio:.3f}")
    write_json(
        "sim",
        {
            "params": {**vars(args), "mujoco_gl": os.environ.get("MUJOCO_GL")},
            "results": results,
            "ratio_cameras_to_physics": ratios,
        },
    )


if __name__ == "__main__":
    main()
