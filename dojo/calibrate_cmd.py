"""``dojo calibrate``: camera intrinsics, hand-eye and latency, and a check of the files.

    dojo calibrate intrinsics camera=wrist [yes=true]  K and distortion from ChArUco views,
                                   guided by the image coverage; writes calibration/wrist.yaml
    dojo calibrate handeye camera=front [yes=true]     the camera's pose: on the ee_site
                                   (a camera on the arm) or in the base frame (a fixed one)
    dojo calibrate latency camera=front [yes=true]     command -> joint_states -> image delays
    dojo calibrate check camera=front [yes=true]       do the file's intrinsics and hand-eye
                                   still hold (a bumped camera)? Writes nothing.

The arm moves itself through planned poses (``calibration.poses``: inside the joint limits and
the workspace box, every path checked); before the first motion the person confirms, by
``yes=true`` or at the prompt here (without a terminal and without ``yes=true`` nothing
moves). The files are ROS camera_info YAML (``calibration.camera_file``), replaced atomically;
a camera device's ``calibration`` key or ``recorder.calibration_dir`` points the camera node
and the recorder at them.

Where it runs: in the twin (``robot.driver=sim``), in this process, on the library objects the
driver uses (``Twin``, ``SafetyLimits``; ``calibration.twin_rig``), not through the ROS graph;
it prints the twin's truth beside each result. Another robot is refused: a rig over its
driver and cameras is not built yet. ``sim.camera_delay`` injects a camera delay to measure
(``+sim.camera_delay.front=0.08``).

Static transform: the hand-eye is written to the file, and the command prints the
``static_transform_publisher`` line that publishes it. It does not publish ``/tf_static``
itself: tf2_msgs (TFMessage) is not among the ROS wheels on the registry (only in a ROS
install), and the stack uses no message type it cannot install from pip.

Exit status: 0 done (check: the file holds), 2 refused (bad input, not confirmed, too few
views, degenerate poses, a file for another camera or resolution, a NaN), 3 check: the file no
longer holds, 1 unexpected.
"""

from __future__ import annotations

import sys

import numpy as np

from dojo.commands import TWIN_READS, Command

READS = (*TWIN_READS, "calibrate")
ALIASES = {"camera": "calibrate.camera", "yes": "calibrate.confirmed", "dir": "calibrate.dir"}


def _confirm(confirmed: bool):
    """The confirmation callback: ``yes=true``, else a prompt on a terminal, else no."""

    def confirm(text: str) -> bool:
        print(text, flush=True)
        if confirmed:
            return True
        if not sys.stdin.isatty():
            print("not confirmed: pass yes=true to let the arm move", file=sys.stderr)
            return False
        return input("move the arm? [y/N] ").strip().lower() in ("y", "yes")

    return confirm


def _rig(cfg, cal):
    from calibration.errors import CalibrationError
    from calibration.twin_rig import TwinRig
    from dojo import conf

    spec = conf.robot_spec(cfg)
    if cfg.robot.driver != "sim":
        raise CalibrationError(
            f"dojo calibrate runs against the twin only (robot.driver=sim); robot '{spec.name}' "
            f"uses driver '{cfg.robot.driver}', for which no calibration rig is built yet"
        )
    names = [c.name for c in spec.cameras]
    if not cal.camera:
        raise CalibrationError(f"say which camera: camera=NAME (cameras: {names})")
    if cal.camera not in names:
        raise CalibrationError(f"robot '{spec.name}' has no camera '{cal.camera}' ({names})")
    twin = conf.twin_config(cfg)
    probe = TwinRig(spec, cal.table_board, twin, camera_delay=twin.camera_delay)
    if probe.on_arm(cal.camera):
        return probe
    probe.close()
    return TwinRig(spec, cal.hand_board, twin, camera_delay=twin.camera_delay)


def _run(what: str, overrides: list[str]) -> int:
    from calibration import procedures
    from calibration.errors import CalibrationError
    from dojo import conf

    command = COMMANDS_BY_NAME[what]
    cfg = command.load(overrides)
    cal = conf.section(cfg, "calibrate")
    try:
        rig = _rig(cfg, cal)
    except CalibrationError as err:
        print(f"dojo {command.name}: {err}", file=sys.stderr)
        return 2
    try:
        with rig:
            return REPORTS[what](rig, cal, procedures, _confirm(cal.confirmed))
    except CalibrationError as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        for line in lines[1:]:  # the coverage map, when intrinsics refuse
            print(line, file=sys.stderr)
        print(f"dojo {command.name}: {lines[0] if lines else err}", file=sys.stderr)
        return 2


def _intrinsics(rig, cal, procedures, confirm) -> int:
    path, result, _ = procedures.run_intrinsics(rig, cal.camera, cal, confirm, print)
    K, truth = result.K, rig.true_intrinsics(cal.camera)
    print(
        f"{path}: fx {K[0, 0]:.2f} fy {K[1, 1]:.2f} cx {K[0, 2]:.2f} cy {K[1, 2]:.2f} px, "
        f"D {np.round(result.D, 4).tolist()}, reprojection RMS {result.rms_px:.3f} px over "
        f"{result.views} views"
    )
    print(
        f"twin truth: fx=fy {truth.fx:.2f} cx {truth.cx:.2f} cy {truth.cy:.2f}: f off by "
        f"{100 * (K[0, 0] / truth.fx - 1):+.2f}% / {100 * (K[1, 1] / truth.fy - 1):+.2f}%, "
        f"c by {K[0, 2] - truth.cx:+.2f} / {K[1, 2] - truth.cy:+.2f} px"
    )
    _bounds(rig)
    return 0


def _handeye(rig, cal, procedures, confirm) -> int:
    from calibration.geometry import pose_error, quaternion_xyzw
    from calibration.handeye import EYE_IN_HAND

    path, result = procedures.run_handeye(rig, cal.camera, cal, confirm, print)
    t = result.solution
    parent = rig.spec.ee_site if result.mode == EYE_IN_HAND else rig.kin.base_body
    child = f"{cal.camera}_optical"
    q = quaternion_xyzw(t[:3, :3])
    print(
        f"{path}: {result.mode} {parent} -> {child}: t {np.round(t[:3, 3], 4).tolist()} m, "
        f"q(xyzw) {np.round(q, 5).tolist()}; {result.views} views, reprojection RMS "
        f"{result.reprojection_rms_px:.3f} px, per-view spread {result.residual_mm:.2f} mm / "
        f"{result.residual_deg:.3f} deg"
    )
    truth = (
        rig.true_ee_from_camera(cal.camera)
        if result.mode == EYE_IN_HAND
        else rig.true_base_from_camera(cal.camera)
    )
    mm, deg = pose_error(t, truth)
    print(f"twin truth: off by {1000 * mm:.2f} mm, {deg:.3f} deg")
    x, y, z = (f"{v:.6f}" for v in t[:3, 3])
    qx, qy, qz, qw = (f"{v:.6f}" for v in q)
    print(
        "publish it (tf2_ros, from a ROS install): ros2 run tf2_ros static_transform_publisher "
        f"--x {x} --y {y} --z {z} --qx {qx} --qy {qy} --qz {qz} --qw {qw} "
        f"--frame-id {parent} --child-frame-id {child}"
    )
    _bounds(rig)
    return 0


def _latency(rig, cal, procedures, confirm) -> int:
    path, result = procedures.run_latency(rig, cal.camera, cal, confirm, print)
    ms = {k: 1000 * v for k, v in result.as_dict().items()}
    print(
        f"{path}: command -> joint_states {ms['command_to_joint_states']:.1f} ms, command -> "
        f"image {ms['command_to_image']:.1f} ms, image after joint_states "
        f"{ms['image_after_joint_states']:.1f} ms ({result.frames} frames)"
    )
    injected = rig.twin.config.camera_delay.get(cal.camera, 0.0)
    print(
        f"twin truth: camera delay {1000 * injected:.1f} ms; off by "
        f"{ms['image_after_joint_states'] - 1000 * injected:+.1f} ms"
    )
    _bounds(rig)
    return 0


def _check(rig, cal, procedures, confirm) -> int:
    result = procedures.run_check(rig, cal.camera, cal, confirm, print)
    he = "-" if result.handeye_rms_px is None else f"{result.handeye_rms_px:.3f} px"
    verdict = "holds" if result.holds else "does NOT hold"
    print(
        f"calibration of '{cal.camera}' {verdict}: reprojection RMS {result.rms_px:.3f} px "
        f"(<= {cal.check.max_rms_px}), hand-eye {he} (<= {cal.check.max_handeye_rms_px}) over "
        f"{result.views} views"
    )
    for reason in result.reasons:
        print(f"  {reason}")
    _bounds(rig)
    return 0 if result.holds else 3


def _bounds(rig) -> None:
    out = rig.workspace_violation()
    held = len(rig.safety_events)
    ok = "inside" if out == 0 and held == 0 else f"OUTSIDE by {1000 * out:.1f} mm"
    print(
        f"arm: {len(rig.visited)} ticks, end effector {ok} the workspace box, "
        f"{held} safety clamps or holds"
    )


REPORTS = {"intrinsics": _intrinsics, "handeye": _handeye, "latency": _latency, "check": _check}
USAGE = {
    "intrinsics": "Camera intrinsics from ChArUco views (coverage-guided); writes the file.",
    "handeye": "The camera's pose (eye-in-hand or eye-to-hand); adds hand_eye to its file.",
    "latency": "Command -> joint_states -> image delays from a commanded swing; adds latency.",
    "check": "Re-measure reprojection and hand-eye with the current file; exit 3 if they fail.",
}
COMMANDS = tuple(
    Command(
        f"calibrate {what}",
        lambda argv, what=what: _run(what, argv),
        READS,
        USAGE[what],
        aliases=ALIASES,
    )
    for what in REPORTS
)
COMMANDS_BY_NAME = {c.name.split()[1]: c for c in COMMANDS}
