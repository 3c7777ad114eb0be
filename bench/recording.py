"""Recording at the robot's real rates: the recorder node over ROS 2 against LeRobot's writer.

    .venv/bin/python bench/recording.py [--seconds 60] [--dir DIR] [--camera-offset-ms 0]

(The kill -9 trials of the episode store are ``bench/recording_kill.py``; the store alone,
without ROS, is ``bench/recording_store.py``.)

1. **The recorder node, over ROS 2.** A separate "robot" process (this file, ``--role robot``)
   publishes three 640x480 RGB cameras at 30 Hz, ``joint_states`` and ``driver/command`` at the
   control rate (50 Hz, SO-101 preset) and a latched ``task/instruction``, with the project's
   Fast DDS profile (``node_env``) on a ROS_DOMAIN_ID of its own. The real recorder
   (``python -m dojo.nodes.recorder``, config composed by ``dojo.conf.load``: the default robot
   with ``robot.cameras`` replaced by cam0..cam2 640x480 at 30 Hz, ``recorder.fps=30``) records
   one episode: the robot process streams 1 s to warm up, calls ``episode/start``, streams
   exactly ``--seconds`` of data, waits 0.1 s for the last frames to arrive, and calls
   ``episode/stop``. Every frame carries its index in a band of black/white 32x32 blocks along
   its top edge (survives JPEG), so after commit the store says which published frames it holds.
2. **LeRobot's writer, in this process**, on the same frames (same pixels, same count, same
   order as the store holds), fed at the same real-time rate (30 steps/s): LeRobotDataset.create
   (video, AV1 via libsvtav1 by default; 4 PNG writer threads per camera, as ``lerobot-record``
   does) + ``add_frame`` per step, then ``save_episode`` (waits for the PNGs, encodes the videos)
   and ``finalize``. If LeRobot cannot encode video here it says so and stores images. Why paced
   rather than as fast as it goes: both writers face a live robot, so the questions are the
   same for both: does it keep up, at what CPU, and how long after stop is the episode done.

Columns of the recording table (one row per writer):

    frames            frames stored: steps x cameras (ours: read back from the store after
                      commit, checksums verified; LeRobot: frames passed to add_frame)
    fps record        frames / seconds of streaming (the input rate is 90 frames/s; a writer
                      that keeps up shows ~90)
    fps episode       frames / (seconds of streaming + stop->done): the rate at which
                      back-to-back episodes can be recorded, since the next one cannot start
                      before the last is done
    dropped           published frames that are not in the store (ours: distinct frame indices
                      found, per camera, summed; LeRobot is fed in-process and drops nothing)
    CPU record        CPU time of the writing process while recording / wall time, in cores
                      (1.0 = one core busy). Ours: the recorder process, which also receives,
                      deserialises and aligns the ROS messages; LeRobot: this process and its
                      children (PNG writer threads)
    CPU stop          the same over stop->done (LeRobot: the video encoders, children included)
    stop->done s      ours: from the episode/stop call to its response (the commit: flush,
                      checksums, fsync); LeRobot: save_episode (finalize is reported apart;
                      a multi-episode session calls it once at the end)

The ratios line is ours / LeRobot for each column (fps: higher is better; CPU and seconds:
lower is better). The detail table breaks ours down:

    steps/expected    steps stored / seconds x 30; fewer: control ticks that never reached
                      the aligner
    step gaps         consecutive steps more than 1.5 record periods apart (lost ticks; 50 Hz
                      ticks on a 30 Hz grid are normally 20 or 40 ms apart)
    published/cam     frames each camera published during the episode
    stored, distinct  frames in the store, and how many distinct published frames they are
    dropped: grid     published frames that no step asks for: each step holds the frame nearest
                      to its control tick, and the tick taken for a grid point can be up to one
                      control period after it, so for some phases between cameras and ticks
                      (see --camera-offset-ms, and after every gap in the ticks, where the grid
                      restarts) every third frame is skipped and its neighbour stored twice
    dropped: lost     frames a step asked for that are not in the store (never received, or
                      too late for their step); grid + lost = dropped
    dropped 1st s     how many dropped frames fall in the first second (this is the recorder's
                      first episode since it started: losses there only point at warm-up)
    misaligned,       what the aligner itself counted (frame further than 50 ms from its step;
    missing           no frame at all), from the stop response
    rec dropped steps steps the recorder dropped itself (its writer queue full), and
    max queued        the deepest that queue got (recorder/status)
    commit s          the recorder's own commit time (part of stop->done)
    publish lag       how late the robot process published against its schedule: a starved
                      publisher on a loaded machine shows up here, not as a recorder fault

Everything is written under a temporary directory (``--dir`` picks where; it should be on the
disk you record to) and removed at the end. Nothing touches the network: HF_HUB_OFFLINE=1 and a
local LeRobot root.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

os.environ["HF_HUB_OFFLINE"] = "1"  # LeRobot must never reach the Hub from here
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from bench.common import percentiles, print_table, write_json  # noqa: E402
from dojo.ros.env import node_env  # noqa: E402

N_CAMERAS = 3
WIDTH, HEIGHT, CAMERA_HZ = 640, 480, 30
RECORD_FPS = 30
INSTRUCTION = "pick up the red cube and place it in the bin"
WARMUP_S = 1.0
DELIVERY_GRACE_S = 0.1  # after the last frame, before episode/stop (latency here is 3-5 ms)
START_TIMEOUT_S = 90.0  # a node process coming up on a loaded machine: imports, discovery
STOP_TIMEOUT_S = 150.0  # the recorder itself gives a commit 120 s
POOL = 8  # distinct base images per camera (JPEG cost depends on content; keep it realistic)
BAND_BITS = 20
BAND_ROWS = 32
WARMUP_FLAG = 1 << 19  # index bit set on warm-up frames, which no episode may contain
RECORDER_ARGS = ("--ros-args", "-r", "__node:=recorder", "-p")
RECORDING_HEADER = [
    *("writer", "frames", "fps record", "fps episode", "dropped"),
    *("CPU record", "CPU stop", "stop->done s"),
]
DETAIL_HEADER = [
    *("steps/expected", "step gaps", "published/cam", "stored", "distinct"),
    *("dropped: grid", "dropped: lost", "dropped 1st s"),
    *("misaligned", "missing", "rec dropped steps", "max queued", "commit s"),
    "publish lag p99/max ms",
]


# --------------------------------------------------------------------------------------------
# Frames: the same pixels in the robot process (published) and here (fed to LeRobot)


def frame_pool(camera: int, width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """Smooth gradient plus sensor-like noise, ``POOL`` variants per camera, deterministic."""
    rng = np.random.default_rng(1000 + camera)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 255 / (width + height)], -1)
    return [
        np.clip(base + rng.uniform(0, 40) + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
        for _ in range(POOL)
    ]


def stamp_index(image: np.ndarray, index: int) -> np.ndarray:
    """Write ``index`` into the top band of ``image`` in place: bit b is block b, white = 1."""
    w = image.shape[1] // BAND_BITS
    for b in range(BAND_BITS):
        image[:BAND_ROWS, b * w : (b + 1) * w] = 255 if (index >> b) & 1 else 0
    return image


def read_index(image: np.ndarray) -> int:
    """The index ``stamp_index`` wrote, from the centre of each block (JPEG-proof)."""
    w = image.shape[1] // BAND_BITS
    q, r = BAND_ROWS // 4, w // 4
    index = 0
    for b in range(BAND_BITS):
        block = image[q : BAND_ROWS - q, b * w + r : (b + 1) * w - r]
        if block.mean() > 127:
            index |= 1 << b
    return index


def make_frame(pools: list[list[np.ndarray]], camera: int, index: int) -> np.ndarray:
    """A fresh array: frame ``index`` of ``camera`` exactly as the robot process published it."""
    return stamp_index(pools[camera][index % POOL].copy(), index)


def joint_sample(t: float, d: int) -> tuple[np.ndarray, np.ndarray]:
    phase = 2 * np.pi * 0.2 * t + np.arange(d)
    return 0.3 * np.sin(phase), 0.3 * 2 * np.pi * 0.2 * np.cos(phase)


# --------------------------------------------------------------------------------------------
# 1. The robot process: publishes, drives the episode, measures the recorder


def robot_process(
    config: str, seconds: float, camera_offset: float, recorder_pid: int, out: str
) -> None:
    import psutil
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String
    from std_srvs.srv import SetBool, Trigger

    from dojo import conf
    from dojo.ros import convert, topics
    from robot.schema import ControlSource, JointState

    cfg = conf.from_yaml_file(config)
    spec = conf.robot_spec(cfg)
    cams = spec.cameras
    joints = spec.joint_names
    control_hz = float(spec.control_hz)
    camera_hz = float(cams[0].fps)
    pools = [frame_pool(k, c.width, c.height) for k, c in enumerate(cams)]
    recorder = psutil.Process(recorder_pid)
    me = psutil.Process()

    rclpy.init()
    node = rclpy.create_node("recording_bench_robot")
    image_pubs = [topics.camera_image(c.name).publisher(node) for c in cams]
    state_pub = topics.JOINT_STATES.publisher(node)
    command_pub = topics.DRIVER_COMMAND.publisher(node)
    instruction_pub = topics.TASK_INSTRUCTION.publisher(node)
    lock = threading.Lock()
    statuses: list[dict] = []

    def on_status(msg: String) -> None:
        with lock:
            statuses.append(json.loads(msg.data))

    topics.RECORDER_STATUS.subscription(node, on_status)
    start_client = topics.EPISODE_START.client(node)
    stop_client = topics.EPISODE_STOP.client(node)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinning = threading.Event()
    spinning.set()

    def spin() -> None:
        while spinning.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, name="spin", daemon=True)
    spinner.start()

    def call(client, request, timeout: float, what: str):
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f"no response from {what} within {timeout:.0f} s")
        return future.result()

    def stream(duration: float, flag: int) -> tuple[int, int, list[float], float]:
        """Publish ``duration`` s of frames and control ticks on a fixed schedule (tick k at
        k / control_hz, frame j at camera_offset + j / camera_hz); frames are numbered from 0
        (``| flag``). Late events are published late, never skipped. Returns the counts, the
        lateness of each event and the wall time (ROS time) of the schedule's zero."""
        n_ticks = round(duration * control_hz)
        n_frames = round(duration * camera_hz)
        lags: list[float] = []
        i_tick = i_frame = 0
        t0 = time.monotonic()
        wall0 = time.time()
        while i_tick < n_ticks or i_frame < n_frames:
            t_tick = i_tick / control_hz if i_tick < n_ticks else np.inf
            t_frame = camera_offset + i_frame / camera_hz if i_frame < n_frames else np.inf
            t = min(t_tick, t_frame)
            delay = t0 + t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            lags.append(max(0.0, -delay))
            stamp = wall0 + t
            if t_frame <= t_tick:
                for k, (cam, pub) in enumerate(zip(cams, image_pubs, strict=True)):
                    image = stamp_index(pools[k][i_frame % POOL], i_frame | flag)
                    pub.publish(convert.image_to_msg(image, stamp, cam.name))
                i_frame += 1
            else:
                pos, vel = joint_sample(t, len(joints))
                state_pub.publish(convert.joint_state_to_msg(JointState(stamp, pos, vel), joints))
                command_pub.publish(
                    convert.command_to_msg(stamp, pos, ControlSource.POLICY, joints)
                )
                i_tick += 1
        return n_frames, n_ticks, lags, wall0

    try:
        publishers = [*image_pubs, state_pub, command_pub, instruction_pub]
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (
            all(p.get_subscription_count() > 0 for p in publishers)
            and start_client.service_is_ready()
            and stop_client.service_is_ready()
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the recorder did not subscribe and offer its services within "
                    f"{START_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.05)
        instruction_pub.publish(String(data=INSTRUCTION))
        stream(WARMUP_S, WARMUP_FLAG)
        deadline = time.monotonic() + 30.0
        while True:  # the latched instruction may still be on its way
            started = call(start_client, Trigger.Request(), 30.0, "episode/start")
            if started.success:
                break
            if "instruction" not in started.message or time.monotonic() > deadline:
                raise RuntimeError(f"episode/start refused: {started.message}")
            time.sleep(0.1)

        cpu0, mine0, w0 = sum(recorder.cpu_times()[:2]), sum(me.cpu_times()[:2]), time.monotonic()
        published, ticks, lags, wall0 = stream(seconds, 0)
        time.sleep(DELIVERY_GRACE_S)
        cpu1, mine1, w1 = sum(recorder.cpu_times()[:2]), sum(me.cpu_times()[:2]), time.monotonic()
        stopped = call(stop_client, SetBool.Request(data=True), STOP_TIMEOUT_S, "episode/stop")
        w2 = time.monotonic()
        cpu2 = sum(recorder.cpu_times()[:2])
        rss = recorder.memory_info().rss
        if not stopped.success:
            raise RuntimeError(f"episode/stop failed: {stopped.message}")
        time.sleep(0.6)  # one more recorder/status period, for the final counters
        with lock:
            seen = list(statuses)
        recording = [s for s in seen if s.get("recording")]
        result = {
            "episode": json.loads(stopped.message),
            "stream_wall0": wall0,
            "published_per_camera": published,
            "control_ticks": ticks,
            "record_s": w1 - w0,
            "stop_s": w2 - w1,
            "recorder_cpu_record": (cpu1 - cpu0) / (w1 - w0),
            "recorder_cpu_stop": (cpu2 - cpu1) / (w2 - w1),
            "recorder_rss_mib": rss / 2**20,
            "robot_cpu_record": (mine1 - mine0) / (w1 - w0),
            "publish_lag_ms": {k: v * 1e3 for k, v in percentiles(lags, (50, 99, 100)).items()},
            "status_max_queued": max((s.get("queued", 0) for s in recording), default=0),
            "status_max_dropped": max((s.get("dropped", 0) for s in recording), default=0),
            "status_messages": len(seen),
        }
        Path(out).write_text(json.dumps(result))
    finally:
        spinning.clear()
        spinner.join(timeout=5)
        node.destroy_node()
        rclpy.try_shutdown()


def _stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def ros_run(seconds: float, camera_offset: float, where: Path, domain: int) -> dict:
    """Record one episode with the real recorder node; read it back and count frames."""
    from dojo import conf
    from episodes.store import EpisodeStore

    store_url = where / "recorder.zarr"
    cameras = ",".join(
        f"{{name:cam{k},width:{WIDTH},height:{HEIGHT},fps:{CAMERA_HZ}}}" for k in range(N_CAMERAS)
    )
    cfg = conf.load(
        [
            f"robot.cameras=[{cameras}]",
            f"recorder.fps={RECORD_FPS}",
            f"store={store_url}",
            "recorder.min_free_gb=0.1",
            f"out={where / 'run'}",
        ]
    )
    config_file = where / "recorder.yaml"
    config_file.write_text(conf.to_yaml(cfg))
    env = node_env(domain)
    result_file = where / "robot.json"
    logs = {name: where / f"{name}.log" for name in ("recorder", "robot")}
    handles = {name: path.open("w") for name, path in logs.items()}
    procs: list[subprocess.Popen] = []
    try:
        recorder = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dojo.nodes.recorder",
                *RECORDER_ARGS,
                f"config_file:={config_file}",
            ],
            env=env,
            cwd=REPO,
            stdout=handles["recorder"],
            stderr=subprocess.STDOUT,
        )
        procs.append(recorder)
        robot = subprocess.Popen(
            [
                *(sys.executable, __file__, "--role", "robot", "--config", str(config_file)),
                *("--seconds", str(seconds), "--camera-offset-ms", str(camera_offset * 1e3)),
                *("--recorder-pid", str(recorder.pid)),
                *("--out", str(result_file)),
            ],
            env=env,
            cwd=REPO,
            stdout=handles["robot"],
            stderr=subprocess.STDOUT,
        )
        procs.append(robot)
        limit = 2 * START_TIMEOUT_S + WARMUP_S + seconds + STOP_TIMEOUT_S + 30
        try:
            code = robot.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            code = None
        if code != 0 or not result_file.exists():
            raise RuntimeError(
                f"the robot process {'timed out' if code is None else f'exited {code}'}\n"
                f"--- robot.log\n{_tail(logs['robot'])}\n--- recorder.log\n"
                f"{_tail(logs['recorder'])}"
            )
    finally:
        for proc in reversed(procs):
            _stop_process(proc)
        for fh in handles.values():
            fh.close()
    run = json.loads(result_file.read_text())
    episode_id = run["episode"]["episode"]

    store = EpisodeStore.open(str(store_url))
    t0 = time.perf_counter()
    ep = store.read(episode_id, verify=True)
    read_verify_s = time.perf_counter() - t0
    published = run["published_per_camera"]
    indices: dict[str, list[int]] = {}
    for cam in sorted(ep.images):
        arr = ep.images[cam]
        found: list[int] = []
        for i in range(0, ep.n_steps, 64):
            found.extend(read_index(img) for img in arr[i : i + 64])
        indices[cam] = found
    distinct = {c: len({i for i in idx if 0 <= i < published}) for c, idx in indices.items()}
    foreign = {c: sum(1 for i in idx if not 0 <= i < published) for c, idx in indices.items()}
    out_of_order = {
        c: int(np.sum(np.diff(np.asarray(idx)) < 0)) if len(idx) > 1 else 0
        for c, idx in indices.items()
    }
    frames = ep.n_steps * len(ep.images)
    dropped = sum(published - d for d in distinct.values())
    # Which frame each stored step should hold had every frame arrived in time: the published
    # frame nearest to the step's time (the aligner's rule). A published frame no step asks
    # for is skipped by the record grid itself; one asked for but not stored was lost (never
    # received, or too late for its step).
    frame_t = run["stream_wall0"] + camera_offset + np.arange(published) / CAMERA_HZ
    ideal = {int(np.argmin(np.abs(frame_t - t))) for t in np.asarray(ep.t)}
    lost_asked = sum(len(ideal - set(idx)) for idx in indices.values())
    first = min(published, CAMERA_HZ)  # frames of the first second: a cold recorder's share
    dropped_first_s = sum(
        first - len({i for i in idx if 0 <= i < first}) for idx in indices.values()
    )
    gaps = np.diff(np.asarray(ep.t))
    info = run["episode"]
    return {
        "episode": episode_id,
        "steps": ep.n_steps,
        "frames": frames,
        "published_frames": published * len(ep.images),
        "published_per_camera": published,
        "distinct_per_camera": distinct,
        "foreign_frames": foreign,
        "out_of_order": out_of_order,
        "frames_dropped": dropped,
        "frames_dropped_first_s": dropped_first_s,
        "frames_dropped_lost": lost_asked,
        "frames_dropped_by_grid": dropped - lost_asked,
        "frames_never_asked_per_camera": published - len(ideal),
        "camera_offset_ms": camera_offset * 1e3,
        "steps_expected": round(seconds * RECORD_FPS),
        "largest_step_gap_s": float(gaps.max()) if gaps.size else 0.0,
        "step_gaps": int(np.sum(gaps > 1.5 / RECORD_FPS)),  # lost control ticks show here
        "dropped_indices": {
            c: sorted(set(range(published)) - set(idx))[:50] for c, idx in indices.items()
        },
        "repeats": frames - sum(distinct.values()) - sum(foreign.values()),
        "recorder_dropped_steps": info.get("dropped", 0),
        "misaligned_frames": info.get("misaligned_frames", {}),
        "missing_frames": info.get("missing_frames", {}),
        "skew_flags": info.get("skew_flags", []),
        "commit_s_recorder": info.get("commit_s"),
        "record_s": run["record_s"],
        "stop_to_done_s": run["stop_s"],
        "fps_record": frames / seconds,
        "fps_episode": frames / (seconds + run["stop_s"]),
        "cpu_record_cores": run["recorder_cpu_record"],
        "cpu_record_share_of_machine": run["recorder_cpu_record"] / (os.cpu_count() or 1),
        "cpu_stop_cores": run["recorder_cpu_stop"],
        "recorder_rss_mib": run["recorder_rss_mib"],
        "robot_cpu_record_cores": run["robot_cpu_record"],
        "publish_lag_ms": run["publish_lag_ms"],
        "status_max_queued": run["status_max_queued"],
        "status_max_dropped": run["status_max_dropped"],
        "read_verify_s": read_verify_s,
        "indices": indices,  # per camera, per step: the published frame stored there
    }


# --------------------------------------------------------------------------------------------
# 2. LeRobot's writer on the same frames


def lerobot_run(indices: dict[str, list[int]], seconds: float, where: Path) -> dict:
    import psutil

    from episodes.lerobot import video_unavailable_reason

    os.environ.setdefault("HF_LEROBOT_HOME", str(where / "hf_lerobot_home"))
    os.environ.setdefault("SVT_LOG", "1")  # libsvtav1: errors only (its banner is per encoder)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    cams = sorted(indices)
    steps = len(indices[cams[0]])
    why = video_unavailable_reason()
    video = not why
    if why:
        print(f"LeRobot cannot encode video here ({why}); it stores images (PNG) instead")
    d = 6
    features = {
        "observation.state": {"dtype": "float32", "shape": (d,), "names": None},
        "action": {"dtype": "float32", "shape": (d,), "names": None},
        **{
            f"observation.images.{c}": {
                "dtype": "video" if video else "image",
                "shape": (HEIGHT, WIDTH, 3),
                "names": ["height", "width", "channels"],
            }
            for c in cams
        },
    }
    pools = [frame_pool(k) for k in range(len(cams))]
    dataset = LeRobotDataset.create(
        repo_id="vla_dojo/bench_recording",
        fps=RECORD_FPS,
        features=features,
        root=where / "lerobot",
        robot_type="so101",
        use_videos=video,
        image_writer_threads=4 * len(cams),  # lerobot-record's default: 4 per camera
    )
    me = psutil.Process()

    def cpu() -> float:
        t = me.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    try:
        period = 1.0 / RECORD_FPS
        lags = []
        cpu0, t0 = cpu(), time.monotonic()
        for s in range(steps):
            due = t0 + s * period
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            lags.append(max(0.0, -delay))
            pos, _vel = joint_sample(s * period, d)
            frame = {
                "observation.state": pos.astype(np.float32),
                "action": pos.astype(np.float32),
                "task": INSTRUCTION,
            }
            for k, c in enumerate(cams):
                frame[f"observation.images.{c}"] = make_frame(pools, k, indices[c][s])
            dataset.add_frame(frame)
        # the last step is due at (steps - 1) * period; the episode lasts steps * period
        end = t0 + steps * period
        time.sleep(max(0.0, end - time.monotonic()))
        cpu1, t1 = cpu(), time.monotonic()
        dataset.save_episode()
        cpu2, t2 = cpu(), time.monotonic()
        dataset.finalize()
        t3 = time.monotonic()
    finally:
        dataset.finalize()
    frames = steps * len(cams)
    size = sum(p.stat().st_size for p in (where / "lerobot").rglob("*") if p.is_file())
    return {
        "video": video,
        "video_unavailable": why,
        "vcodec": "libsvtav1 (LeRobot default)" if video else "png",
        "steps": steps,
        "frames": frames,
        "frames_dropped": 0,
        "record_s": t1 - t0,
        "stop_to_done_s": t2 - t1,
        "finalize_s": t3 - t2,
        "fps_record": frames / (t1 - t0),
        "fps_episode": frames / ((t1 - t0) + (t2 - t1)),
        "cpu_record_cores": (cpu1 - cpu0) / (t1 - t0),
        "cpu_stop_cores": (cpu2 - cpu1) / (t2 - t1),
        "add_frame_lag_ms": {k: v * 1e3 for k, v in percentiles(lags, (50, 99, 100)).items()},
        "mib_on_disk": size / 2**20,
    }


# --------------------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="episode length (streaming s)")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: tmp)")
    ap.add_argument(
        "--camera-offset-ms",
        type=float,
        default=0.0,
        help="camera frames this much after the control ticks (0 <= x < 33.3; default 0)",
    )
    ap.add_argument("--role", choices=["main", "robot"], default="main", help=argparse.SUPPRESS)
    ap.add_argument("--config", default="", help=argparse.SUPPRESS)
    ap.add_argument("--recorder-pid", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "robot":
        return robot_process(
            args.config, args.seconds, args.camera_offset_ms / 1e3, args.recorder_pid, args.out
        )
    if args.seconds <= 0:
        ap.error("--seconds must be > 0")
    if not 0 <= args.camera_offset_ms < 1e3 / CAMERA_HZ:
        ap.error(f"--camera-offset-ms must be in [0, {1e3 / CAMERA_HZ:.1f})")

    domain = 220 + os.getpid() % 12  # outside the integration tests' 20..219
    with tempfile.TemporaryDirectory(prefix="bench_recording_", dir=args.dir) as tmp:
        where = Path(tmp)
        ours = ros_run(args.seconds, args.camera_offset_ms / 1e3, where, domain)
        indices = ours.pop("indices")
        theirs = lerobot_run(indices, args.seconds, where)

    keys = (
        "frames",
        "fps_record",
        "fps_episode",
        "frames_dropped",
        "cpu_record_cores",
        "cpu_stop_cores",
        "stop_to_done_s",
    )
    ratios = {k: _ratio(ours[k], theirs[k]) for k in keys if k not in ("frames", "frames_dropped")}
    print_table(
        f"recording {N_CAMERAS} x {WIDTH}x{HEIGHT} RGB at {CAMERA_HZ} Hz + joints at 50 Hz, "
        f"{args.seconds:g} s, {RECORD_FPS} steps/s, "
        f"cameras {args.camera_offset_ms:g} ms after ticks",
        RECORDING_HEADER,
        [
            ["vla-dojo recorder (ROS 2, zarr JPEG)", *(ours[k] for k in keys)],
            [
                f"LeRobot in-process ({'video' if theirs['video'] else 'images'})",
                *(theirs[k] for k in keys),
            ],
        ],
    )
    print(
        "  ours / LeRobot: "
        + ", ".join(f"{k} x{v:.3g}" for k, v in ratios.items() if v is not None)
        + f"   (LeRobot finalize {theirs['finalize_s']:.3g} s, {theirs['mib_on_disk']:.1f} MiB)"
    )
    lag = ours["publish_lag_ms"]
    print_table(
        "vla-dojo recorder, details",
        DETAIL_HEADER,
        [
            [
                f"{ours['steps']}/{ours['steps_expected']}",
                ours["step_gaps"],
                ours["published_per_camera"],
                ours["frames"],
                sum(ours["distinct_per_camera"].values()),
                ours["frames_dropped_by_grid"],
                ours["frames_dropped_lost"],
                ours["frames_dropped_first_s"],
                sum(ours["misaligned_frames"].values()),
                sum(ours["missing_frames"].values()),
                ours["recorder_dropped_steps"],
                ours["status_max_queued"],
                ours["commit_s_recorder"],
                f"{lag['p99']:.1f}/{lag['p100']:.1f}",
            ]
        ],
    )
    write_json(
        "recording",
        {
            "params": {
                "seconds": args.seconds,
                "cameras": N_CAMERAS,
                "width": WIDTH,
                "height": HEIGHT,
                "camera_hz": CAMERA_HZ,
                "record_fps": RECORD_FPS,
                "camera_offset_ms": args.camera_offset_ms,
                "cpu_count": os.cpu_count(),
            },
            "recorder": ours,
            "lerobot": theirs,
            "ratios_ours_over_lerobot": ratios,
        },
    )


if __name__ == "__main__":
    main()
