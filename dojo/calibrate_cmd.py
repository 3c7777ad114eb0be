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

Where it runs: through the ROS 2 graph a real robot uses (``dojo.ros.calibration_rig``). The
command starts the graph's driver and camera nodes as ``dojo run`` does (``dojo.graph``, on
``ros.domain_id`` / ``ros.namespace``; with ``robot.driver=sim`` the twin's scene gets the
board, ``sim.show_board``), or joins one already running (``calibrate.graph.join=true``: a
launch file's, the board then where ``calibrate.*_board`` says). The arm moves only by
``command/chunk`` through the driver's SafetyLimits and executor; frames and joint states come
from their topics with their stamps. Against the twin it prints the twin's truth beside each
result; ``sim.camera_delay`` injects a camera delay to measure
(``+sim.camera_delay.front=0.08``). ``calibrate.graph.rig=twin`` runs the twin in this
process instead (``calibration.twin_rig``, no ROS; what ``bench/calibration.py`` uses).

Static transform: the hand-eye is written to the file, and the command prints the
``static_transform_publisher`` line that publishes it. It does not publish ``/tf_static``
itself: tf2_msgs (TFMessage) is not among the ROS wheels on the registry (only in a ROS
install), and the stack uses no message type it cannot install from pip.

Exit status: 0 done (check: the file holds), 2 refused (bad input, not confirmed, too few
views, degenerate poses, a file for another camera or resolution, a NaN), 3 check: the file no
longer holds, 1 unexpected.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dojo.commands import GRAPH_READS, Command

READS = (*GRAPH_READS, "calibrate")
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


GRAPH_NODES = ("dojo.nodes.robot_driver", "dojo.nodes.camera", "dojo.nodes.robot_state_publisher")
"""The nodes of ``dojo.graph`` a calibration starts: the driver, the camera nodes, tf."""


def _check_camera(spec, cal) -> None:
    from calibration.errors import CalibrationError

    names = [c.name for c in spec.cameras]
    if not cal.camera:
        raise CalibrationError(f"say which camera: camera=NAME (cameras: {names})")
    if cal.camera not in names:
        raise CalibrationError(f"robot '{spec.name}' has no camera '{cal.camera}' ({names})")


def _twin_rig(cfg, cal, spec):
    """The twin in this process (``calibrate.graph.rig=twin``), no ROS."""
    from calibration.errors import CalibrationError
    from calibration.twin_rig import TwinRig
    from dojo import conf

    if cfg.robot.driver != "sim":
        raise CalibrationError(
            "calibrate.graph.rig=twin runs the twin in this process (robot.driver=sim); robot "
            f"'{spec.name}' uses driver '{cfg.robot.driver}': calibrate it through its graph "
            "(calibrate.graph.rig=graph)"
        )
    twin = conf.twin_config(cfg)
    probe = TwinRig(spec, cal.table_board, twin, camera_delay=twin.camera_delay)
    if probe.on_arm(cal.camera):
        return probe
    probe.close()
    return TwinRig(spec, cal.hand_board, twin, camera_delay=twin.camera_delay)


def _start_graph(cfg, board, stack: contextlib.ExitStack):
    """The driver and camera nodes of ``cfg``'s graph (``dojo.graph``), started as ``dojo run``
    starts them, the twin's scene with ``board`` in it; stopped (driver first) by ``stack``."""
    from omegaconf import OmegaConf

    from dojo import conf, graph
    from dojo.ros.env import node_env
    from dojo.supervisor import Supervisor

    if cfg.robot.driver == "sim":
        cfg.sim.show_board = True
        cfg.sim.board = OmegaConf.structured(board)
    out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dojo-calibrate-")))
    cfg.out = str(out)
    config_file = out / "config.yaml"
    config_file.write_text(conf.to_yaml(cfg))
    nodes = [n for n in graph.build(cfg, config_file) if n.module in GRAPH_NODES]
    env = node_env(cfg.ros.domain_id if cfg.ros.domain_id >= 0 else None)
    env.setdefault("MUJOCO_GL", "egl")
    supervisor = Supervisor(nodes, env, namespace=cfg.ros.namespace, log_level=cfg.ros.log_level)
    stack.callback(supervisor.stop)
    print(
        f"dojo calibrate: starting {', '.join(n.name for n in nodes)} "
        f"(domain {env.get('ROS_DOMAIN_ID', '0')})",
        flush=True,
    )
    supervisor.start()

    def alive() -> str | None:
        for node in supervisor.nodes:
            code = supervisor.procs[node.name].poll()
            if code is not None and node.required:
                return f"node '{node.name}' exited with code {code}"
        return None

    return alive


def _graph_rig(cfg, cal, spec, stack: contextlib.ExitStack):
    """A rig over the graph (``dojo.ros.calibration_rig``): started here, or joined."""
    from calibration.description import Description
    from calibration.errors import CalibrationError
    from dojo import conf
    from dojo.ros.env import node_env

    sim = cfg.robot.driver == "sim"
    try:
        described = Description(spec, perturbed=sim)
    except ValueError as err:  # no MJCF (a DH table), a camera the description has no model of
        raise CalibrationError(
            f"robot '{spec.name}': its description places no camera '{cal.camera}' to plan "
            f"from ({err})"
        ) from err
    description = stack.enter_context(contextlib.closing(described))
    board = cal.table_board if description.on_arm(cal.camera) else cal.hand_board
    alive = None if cal.graph.join else _start_graph(cfg, board, stack)
    # this process's participant takes the graph's transport profile (images over shm)
    for key, value in node_env(None, base={}).items():
        if key in ("RMW_IMPLEMENTATION", "FASTDDS_DEFAULT_PROFILES_FILE"):
            os.environ.setdefault(key, value)
    from dojo.ros.calibration_rig import GraphRig

    rig = GraphRig(
        spec,
        cal,
        description,
        domain_id=cfg.ros.domain_id,
        namespace=str(cfg.ros.namespace),
        command_deadline=float(cfg.driver.command_deadline),
        alive=alive,
        twin_delay=dict(conf.twin_config(cfg).camera_delay) if sim else None,
    )
    stack.callback(rig.close)
    rig.connect([cal.camera])
    return rig


def _refuse_early(what: str, spec, cal) -> None:
    """What would refuse only after the graph had started, refused before: no confirmation
    possible (no ``yes=true``, no terminal), or no intrinsics to build on."""
    from calibration import camera_file
    from calibration.errors import CalibrationError

    if not cal.confirmed and not sys.stdin.isatty():
        raise CalibrationError(
            f"{what} of camera '{cal.camera}': not confirmed; nothing moved (pass yes=true to "
            "let the arm move, or run it in a terminal to be asked)"
        )
    if what != "intrinsics":
        cam = next(c for c in spec.cameras if c.name == cal.camera)
        path = camera_file.camera_path(cal.dir, cal.camera)
        camera_file.read(path, cal.camera, (cam.width, cam.height))


def _rig(what: str, cfg, cal, stack: contextlib.ExitStack):
    from dojo import conf

    spec = conf.robot_spec(cfg)
    _check_camera(spec, cal)
    _refuse_early(what, spec, cal)
    if cal.graph.rig == "twin":
        return stack.enter_context(_twin_rig(cfg, cal, spec))
    return _graph_rig(cfg, cal, spec, stack)


def _run(what: str, overrides: list[str]) -> int:
    from calibration import procedures
    from calibration.errors import CalibrationError
    from dojo import conf

    command = COMMANDS_BY_NAME[what]
    cfg = command.load(overrides)
    cal = conf.section(cfg, "calibrate")
    t0 = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            rig = _rig(what, cfg, cal, stack)
            code = REPORTS[what](rig, cal, procedures, _confirm(cal.confirmed))
            print(f"dojo {command.name}: done in {time.monotonic() - t0:.0f} s", flush=True)
            return code
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
    if truth is not None:  # the twin: its camera model is the truth
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
    if truth is not None:
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
    if rig.twin_delay is not None:
        injected = rig.twin_delay.get(cal.camera, 0.0)
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
        f"arm: {len(rig.visited)} states, end effector {ok} the workspace box, "
        f"{held} safety clamps, holds or refusals"
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
