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

What an episode holds, and how the bench checks one (including one committed just before the
kill whose line never got printed), is :class:`episodes.synthetic.SeededEpisodes`, as for the
tests' crash writer (``tests/episodes/crash_writer.py``, a plain process: the tests kill few
enough writers that imports do not matter). Here: :data:`KILL_TRIAL`, 20-60 steps of two 64x48
cameras (one JPEG, one zstd), durable commits.

    python bench/recording_kill_writer.py STORE_URL      (driven by bench/recording.py)
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import traceback
from pathlib import Path

if __name__ == "__main__":  # run as a script from anywhere: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from episodes.store import EpisodeStore
from episodes.synthetic import SeededEpisodes

KILL_TRIAL = SeededEpisodes(
    robot="kill_arm",
    joints=("shoulder", "elbow", "wrist", "gripper"),
    cameras=(("top", 64, 48, "jpeg"), ("wrist", 64, 48, "zstd")),
    task="kill-trial",
    min_steps=20,  # 20..60 steps
    step_spread=41,
    lowdim_chunk_steps=8,
    growth_steps=16,
)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def _record_forever(url: str, seed_base: int) -> None:
    trial = KILL_TRIAL
    store = EpisodeStore.open_or_create(url, trial.spec(), trial.fps, trial.config())
    pid = os.getpid()
    _say(f"READY {pid}")
    trial.record_forever(store, seed_base, lambda eid, seed: _say(f"COMMITTED {pid} {eid} {seed}"))


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
