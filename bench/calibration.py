"""Calibration in the twin against its ground truth: intrinsics, hand-eye, latency, limits.

    MUJOCO_GL=egl .venv/bin/python -m bench.calibration [--seeds 2] [--delays 0,25,...,150]

For each camera of the SO-101 twin (``wrist``: eye-in-hand, board on the table; ``front``:
eye-to-hand, board in the gripper) and each plan seed, it runs the same procedures as
``dojo calibrate`` (``calibration.procedures`` on ``calibration.twin_rig.TwinRig``, in process)
and compares with the twin's truth (``Twin.camera_info``, ``Twin.camera_pose``, the injected
``sim.camera_delay``). Baselines measured in the same run: the planner's nominal intrinsics
(a datasheet's focal length, 2% off), OpenCV's closed-form hand-eye (Park) before the
reprojection refinement, and recording with no latency correction (an error of the whole
delay). Targets (issue 13): f within 0.5%, c within 2 px, RMS < 0.3 px; hand-eye < 2 mm,
< 0.2 deg; latency within 5 ms for 0..150 ms; the arm never outside its box or joint limits.
Writes bench/results/calibration.json and calibration.png.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from bench.common import RESULTS, print_table, write_json
from calibration.config import CalibrateConfig
from calibration.geometry import pose_error
from calibration.procedures import run_handeye, run_intrinsics, run_latency
from calibration.twin_rig import TwinRig
from tests.sim_helpers import robot_spec

CAMERAS = {"wrist": "table_board", "front": "hand_board"}


def _yes(text: str) -> bool:
    return True


def calibrate_camera(spec, camera: str, seed: int, out: str) -> dict:
    config = CalibrateConfig(dir=out)
    config.plan.seed = 100 * seed
    board = getattr(config, CAMERAS[camera])
    t0 = time.perf_counter()
    with TwinRig(spec, board) as rig:
        _, intr, coverage = run_intrinsics(rig, camera, config, _yes)
        t_intr = time.perf_counter() - t0
        _, he = run_handeye(rig, camera, config, _yes)
        truth_k = rig.true_intrinsics(camera)
        truth = (
            rig.true_ee_from_camera(camera)
            if rig.on_arm(camera)
            else rig.true_base_from_camera(camera)
        )
        nominal = rig.nominal_intrinsics(camera)
        mm, deg = pose_error(he.solution, truth)
        mm0, deg0 = pose_error(he.closed_form, truth)
        return {
            "camera": camera,
            "seed": seed,
            "mode": he.mode,
            "fx_err_pct": 100 * (intr.K[0, 0] / truth_k.fx - 1),
            "fy_err_pct": 100 * (intr.K[1, 1] / truth_k.fy - 1),
            "cx_err_px": float(intr.K[0, 2] - truth_k.cx),
            "cy_err_px": float(intr.K[1, 2] - truth_k.cy),
            "rms_px": intr.rms_px,
            "views": intr.views,
            "coverage": coverage.fraction,
            "nominal_f_err_pct": 100 * (nominal[0, 0] / truth_k.fx - 1),
            "handeye_mm": 1000 * mm,
            "handeye_deg": deg,
            "closed_form_mm": 1000 * mm0,
            "closed_form_deg": deg0,
            "handeye_views": he.views,
            "handeye_rms_px": he.reprojection_rms_px,
            "workspace_violation_m": rig.workspace_violation(),
            "safety_events": len(rig.safety_events),
            "ticks": len(rig.visited),
            "seconds": time.perf_counter() - t0,
            "intrinsics_seconds": t_intr,
        }


def latency_sweep(spec, camera: str, delays_ms: list[float], out: str) -> list[dict]:
    rows = []
    config = CalibrateConfig(dir=out)
    board = getattr(config, CAMERAS[camera])
    for delay in delays_ms:
        t0 = time.perf_counter()
        with TwinRig(spec, board, camera_delay={camera: delay / 1000}) as rig:
            _, lat = run_latency(rig, camera, config, _yes)
            rows.append(
                {
                    "camera": camera,
                    "injected_ms": delay,
                    "measured_ms": 1000 * lat.image_after_joint_states.lag,
                    "error_ms": 1000 * lat.image_after_joint_states.lag - delay,
                    "command_to_joint_states_ms": 1000 * lat.command_to_joint_states.lag,
                    "command_to_image_ms": 1000 * lat.command_to_image.lag,
                    "correlation": lat.image_after_joint_states.correlation,
                    "workspace_violation_m": rig.workspace_violation(),
                    "safety_events": len(rig.safety_events),
                    "seconds": time.perf_counter() - t0,
                }
            )
    return rows


def plot(runs: list[dict], sweep: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    labels = [f"{r['camera']} s{r['seed']}" for r in runs]
    x = np.arange(len(runs))
    ax.bar(x - 0.2, [abs(r["fx_err_pct"]) for r in runs], 0.4, label="|fx| error %")
    ax.bar(x + 0.2, [abs(r["fy_err_pct"]) for r in runs], 0.4, label="|fy| error %")
    ax.axhline(0.5, color="r", ls="--", label="target 0.5%")
    ax.set_xticks(x, labels)
    ax.set_title("intrinsics: focal length error")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.bar(x - 0.2, [r["handeye_mm"] for r in runs], 0.4, label="translation (mm)")
    ax.bar(x + 0.2, [10 * r["handeye_deg"] for r in runs], 0.4, label="rotation (deg x 10)")
    ax.axhline(2.0, color="r", ls="--", label="targets (2 mm, 0.2 deg)")
    ax.set_xticks(x, labels)
    ax.set_title("hand-eye error against the twin")
    ax.legend(fontsize=8)
    ax = axes[2]
    for camera in CAMERAS:
        rows = [r for r in sweep if r["camera"] == camera]
        ax.plot(
            [r["injected_ms"] for r in rows], [r["measured_ms"] for r in rows], "o-", label=camera
        )
    lim = max([r["injected_ms"] for r in sweep] + [1])
    ax.plot([0, lim], [0, lim], "k:", label="truth")
    ax.set_xlabel("injected camera delay (ms)")
    ax.set_ylabel("measured image after joint_states (ms)")
    ax.set_title("latency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--delays", default="0,25,50,75,100,125,150")
    args = parser.parse_args()
    delays = [float(v) for v in args.delays.split(",")]
    spec = robot_spec("so101")
    runs, sweep = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for camera in CAMERAS:
            for seed in range(args.seeds):
                out = os.path.join(tmp, f"{camera}{seed}")
                runs.append(calibrate_camera(spec, camera, seed, out))
                print(f"{camera} seed {seed}: {runs[-1]['seconds']:.0f} s", flush=True)
            sweep += latency_sweep(spec, camera, delays, os.path.join(tmp, f"{camera}0"))
    print_table(
        "intrinsics (twin truth; baseline: nominal f)",
        [
            "camera",
            "seed",
            "fx %",
            "fy %",
            "cx px",
            "cy px",
            "RMS px",
            "views",
            "cover",
            "nominal f %",
            "ratio",
        ],
        [
            [
                r["camera"],
                r["seed"],
                r["fx_err_pct"],
                r["fy_err_pct"],
                r["cx_err_px"],
                r["cy_err_px"],
                r["rms_px"],
                r["views"],
                r["coverage"],
                r["nominal_f_err_pct"],
                abs(r["nominal_f_err_pct"]) / max(abs(r["fx_err_pct"]), abs(r["fy_err_pct"])),
            ]
            for r in runs
        ],
    )
    print_table(
        "hand-eye (twin truth; baseline: closed form, Park)",
        [
            "camera",
            "mode",
            "seed",
            "mm",
            "deg",
            "closed mm",
            "closed deg",
            "views",
            "RMS px",
            "out of box m",
            "clamps",
        ],
        [
            [
                r["camera"],
                r["mode"],
                r["seed"],
                r["handeye_mm"],
                r["handeye_deg"],
                r["closed_form_mm"],
                r["closed_form_deg"],
                r["handeye_views"],
                r["handeye_rms_px"],
                r["workspace_violation_m"],
                r["safety_events"],
            ]
            for r in runs
        ],
    )
    print_table(
        "latency (image after joint_states; baseline: no correction = the whole delay)",
        [
            "camera",
            "injected ms",
            "measured ms",
            "error ms",
            "cmd->js ms",
            "cmd->img ms",
            "corr",
            "out of box m",
        ],
        [
            [
                r["camera"],
                r["injected_ms"],
                r["measured_ms"],
                r["error_ms"],
                r["command_to_joint_states_ms"],
                r["command_to_image_ms"],
                r["correlation"],
                r["workspace_violation_m"],
            ]
            for r in sweep
        ],
    )
    targets = {
        "intrinsics_f": all(
            abs(r["fx_err_pct"]) < 0.5 and abs(r["fy_err_pct"]) < 0.5 for r in runs
        ),
        "intrinsics_c": all(abs(r["cx_err_px"]) < 2 and abs(r["cy_err_px"]) < 2 for r in runs),
        "intrinsics_rms": all(r["rms_px"] < 0.3 for r in runs),
        "handeye_mm": all(r["handeye_mm"] < 2 for r in runs),
        "handeye_deg": all(r["handeye_deg"] < 0.2 for r in runs),
        "latency_5ms": all(abs(r["error_ms"]) < 5 for r in sweep),
        "inside_limits": all(r["workspace_violation_m"] == 0 for r in runs + sweep),
    }
    print("\ntargets met:", targets)
    png = RESULTS / "calibration.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(runs, sweep, png)
    write_json("calibration", {"runs": runs, "latency": sweep, "targets": targets, "png": png.name})


if __name__ == "__main__":
    main()
