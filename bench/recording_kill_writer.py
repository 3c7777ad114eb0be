"""The writer processes that ``bench/recording.py``'s kill -9 trials SIGKILL, and their data.

Run as a script it is a *zygote*: it imports numpy, OpenCV, zarr and ``episodes.store`` once,
then forks one writer per trial. Why: a fresh interpreter spends ~0.7 s on those imports (more
on a loaded machine), which would dominate a trial whose kill lands 0-0.5 s into recording.
The zygote only imports; it never does zarr I/O (zarr's event-loop thread would not survive a
fork). Each child opens the store itself and is a real, separate process: its own pid, its own
writer identity in the episodes it begins, killed by a real SIGKILL.

Protocol, one line per message (stdin: commands; stdout: replies, each one ``os.write``, so the
zygote's and its children's lines never interleave within a line)::

    -> FORK <seed_base>   fork a writer; it replies READY <pid> once the store is open, then
                          records episodes forever, replying COMMITTED <pid> <episode_id> <seed>
                          only after each commit has returned
    -> REAP <pid>         wait for that (killed) child: REAPED <pid> <wait status>
    -> (end of input)     the zygote exits
    <- ZYGOTE <pid>       at start, once imported
    <- FAILED <pid> ...   a writer died of an exception (it should only ever die of SIGKILL)

Everything an episode holds is a pure function of its seed, which goes into its instruction
(``"seed=<n>"``), so the bench can check any committed episode, including one committed just
before the kill whose line never got printed. Episodes are 20-60 steps of two 64x48 cameras
(one JPEG, one zstd); small chunks and growth blocks make them cross chunk and resize
boundaries, so kills land in ``begin``, ``append``, growth, flush and ``commit`` alike.

    python bench/recording_kill_writer.py STORE_URL      (driven by bench/recording.py)
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

if __name__ == "__main__":  # run as a script from anywhere: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from episodes.codec import decode_jpeg, encode_jpeg
from episodes.store import EpisodeStore, ImageCodec, StoreConfig
from robot.schema import RobotSpec
from tests.specs import append_steps, storage_spec, synthetic_episode

JOINTS = ("shoulder", "elbow", "wrist", "gripper")
CAMERAS = (("top", 64, 48, "jpeg"), ("wrist", 64, 48, "zstd"))
JPEG_QUALITY = 90
FPS = 30.0
TASK = "kill-trial"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def make_spec() -> RobotSpec:
    return storage_spec("kill_arm", JOINTS, [(n, w, h) for n, w, h, _ in CAMERAS], FPS)


def make_config() -> StoreConfig:
    """Durable commits (the default), small chunks and growth blocks (see the docstring)."""
    return StoreConfig(
        min_free_bytes=0,
        image_codecs={n: ImageCodec(kind, quality=JPEG_QUALITY) for n, _, _, kind in CAMERAS},
        lowdim_chunk_steps=8,
        growth_steps=16,
    )


def steps_for(seed: int) -> int:
    return 20 + seed % 41  # 20..60 steps


def episode_data(seed: int) -> dict[str, Any]:
    """Deterministic content of episode ``seed`` (see :func:`tests.specs.synthetic_episode`)."""
    cameras = [(name, w, h) for name, w, h, _ in CAMERAS]
    return synthetic_episode(seed, steps_for(seed), JOINTS, cameras, FPS)


def seed_of(instruction: str) -> int:
    if not instruction.startswith("seed="):
        raise ValueError(f"instruction {instruction!r} does not carry a seed")
    return int(instruction[len("seed=") :])


def check_episode(store: EpisodeStore, episode_id: str) -> None:
    """Read ``episode_id`` verifying every checksum, then compare every field with what its
    seed generates (JPEG frames against libjpeg's deterministic round trip). Raises on any
    difference, naming the episode and the field."""
    ep = store.read(episode_id, verify=True)
    seed = seed_of(ep.instruction)
    want = episode_data(seed)
    n = len(want["t"])
    if ep.n_steps != n or ep.task != TASK or ep.started_at != float(seed):
        raise AssertionError(
            f"{episode_id}: {ep.n_steps} steps, task {ep.task!r}, started_at {ep.started_at}; "
            f"seed {seed} records {n} steps, task {TASK!r}, started_at {float(seed)}"
        )
    for key in ("t", "joint_pos", "joint_vel", "action", "control_source"):
        np.testing.assert_array_equal(getattr(ep, key), want[key], err_msg=f"{episode_id} {key}")
    for name, _, _, kind in CAMERAS:
        frames = want["images"][name]
        if kind == "jpeg":
            frames = np.stack([decode_jpeg(encode_jpeg(f, JPEG_QUALITY)) for f in frames])
        np.testing.assert_array_equal(ep.images[name][:], frames, err_msg=f"{episode_id} {name}")


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def _record_forever(url: str, seed_base: int) -> None:
    store = EpisodeStore.open_or_create(url, make_spec(), FPS, make_config())
    pid = os.getpid()
    _say(f"READY {pid}")
    k = 0
    while True:
        seed = seed_base + k
        data = episode_data(seed)
        with store.begin(f"seed={seed}", TASK, float(seed)) as writer:
            append_steps(writer, data)
            episode_id = writer.commit("success", True)
        _say(f"COMMITTED {pid} {episode_id} {seed}")
        k += 1


def _die_with(parent: int) -> None:
    """SIGKILL this child when the zygote dies, so no writer outlives a crashed bench."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the zygote died before prctl took effect
        os._exit(1)


def _child(url: str, seed_base: int, parent: int) -> None:
    code = 1
    try:
        _die_with(parent)
        os.close(0)
        _record_forever(url, seed_base)
    except BaseException as exc:  # anything but SIGKILL is a failure the bench must report
        msg = "".join(traceback.format_exception_only(type(exc), exc)).strip().replace("\n", " | ")
        _say(f"FAILED {os.getpid()} {msg}")
    finally:
        os._exit(code)  # never fall back into the zygote's loop


def zygote(url: str) -> int:
    import cv2  # noqa: F401  (warm the lazy imports the writers need: JPEG, writer identity)
    import psutil  # noqa: F401

    sys.stdout.flush()
    _say(f"ZYGOTE {os.getpid()}")
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "FORK" and len(parts) == 2:
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:
                _child(url, int(parts[1]), parent)
        elif parts[0] == "REAP" and len(parts) == 2:
            pid = int(parts[1])
            _, status = os.waitpid(pid, 0)
            _say(f"REAPED {pid} {status}")
        else:
            _say(f"ERROR unknown command {line.strip()!r}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.rsplit("\n\n", 1)[-1].strip())
    raise SystemExit(zygote(sys.argv[1]))
