"""kill -9 trials of the episode store: a crash loses at most the episode being recorded.

    .venv/bin/python bench/recording_kill.py [--trials 200] [--dir DIR]

A writer process records short episodes (two 64x48 cameras, one JPEG and one zstd, 20-60 steps
each, durable commits) into one store and is SIGKILLed 0-0.8 s after it is ready
(bench/recording_kill_writer.py: a zygote forks one writer per trial, so a trial costs its kill
delay rather than ~0.7 s of imports). After each kill the store is reopened: every committed
episode is read with checksum verification and compared with what its seed generates, every
episode the writer printed (it prints an id only after ``commit`` returned) must still be
there, and ``repair`` removes the uncommitted one.

Columns of the kill table: trials, kills (the writer was still running when SIGKILL landed),
episodes committed (in the store at the end, all verified), reported (ids the writers printed),
lost (committed-and-corrupt plus printed-or-verified-then-missing: must be 0), uncommitted
repaired (removed by ``repair``; at most one per kill), forced (left alone by a plain repair as
possibly still being created, then removed with ``force=True`` since the writer is known dead),
trial seconds p50/max.

Everything is written under a temporary directory (``--dir`` picks where; it should be on the
disk you record to) and removed at the end. Results: ``bench/results/recording_kill.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import percentiles, print_table, write_json  # noqa: E402

START_TIMEOUT_S = 90.0  # the zygote coming up on a loaded machine: imports
KILL_MAX_DELAY_S = 0.8
KILL_WAIT_S = 30.0
KILL_HEADER = [
    *("trials", "kills", "committed", "reported", "lost", "uncommitted repaired", "forced"),
    *("trial s p50", "trial s max"),
]


class _Lines:
    """Lines from the zygote's stdout (its children write there too), read on a thread."""

    def __init__(self, stream) -> None:
        self._q: queue.Queue = queue.Queue()
        self.committed: list[tuple[int, str, int]] = []  # (pid, episode id, seed)
        self.failures: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._q.put(line.strip())
        self._q.put(None)

    def expect(self, word: str, timeout: float) -> list[str]:
        """The next line starting with ``word`` (split); COMMITTED/FAILED lines are collected
        on the way."""
        end = time.monotonic() + timeout
        while True:
            try:
                line = self._q.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"kill trials: no {word} line within {timeout:.0f} s") from None
            if line is None:
                raise RuntimeError(f"kill trials: the writer zygote exited waiting for {word}")
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "COMMITTED":
                self.committed.append((int(parts[1]), parts[2], int(parts[3])))
            elif parts[0] == "FAILED":
                self.failures.append(line)
            if parts[0] == word:
                return parts


def kill_trials(trials: int, where: Path, seed: int = 20261121) -> dict:
    from bench import recording_kill_writer
    from bench.recording_kill_writer import KILL_TRIAL
    from episodes.store import EpisodeStore

    url = str(where / "kill.zarr")
    rng = random.Random(seed)
    zygote = subprocess.Popen(
        [sys.executable, recording_kill_writer.__file__, url],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    lines = _Lines(zygote.stdout)
    children: set[int] = set()
    verified: set[str] = set()
    reported: set[str] = set()
    corrupt: dict[str, str] = {}
    missing: set[str] = set()
    kills = removed = forced = max_uncommitted = 0
    trial_s: list[float] = []
    try:
        lines.expect("ZYGOTE", START_TIMEOUT_S)
        for trial in tqdm(range(trials), desc="kill -9 trials", unit="trial", disable=None):
            t0 = time.monotonic()
            zygote.stdin.write(f"FORK {trial * 1000}\n")
            zygote.stdin.flush()
            pid = int(lines.expect("READY", KILL_WAIT_S)[1])
            children.add(pid)
            time.sleep(rng.uniform(0.0, KILL_MAX_DELAY_S))
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass  # it died on its own: a FAILED line says why
            zygote.stdin.write(f"REAP {pid}\n")
            zygote.stdin.flush()
            while int(lines.expect("REAPED", KILL_WAIT_S)[1]) != pid:
                pass
            children.discard(pid)
            reported |= {eid for p, eid, _ in lines.committed if p == pid}

            store = EpisodeStore.open(url, "a", KILL_TRIAL.config())
            committed = set(store.episode_ids())
            missing |= (reported | verified) - committed
            for episode_id in sorted(committed - verified - set(corrupt)):
                try:
                    KILL_TRIAL.check(store, episode_id)
                    verified.add(episode_id)
                except Exception as exc:
                    corrupt[episode_id] = f"{type(exc).__name__}: {exc}"[:300]
            max_uncommitted = max(max_uncommitted, len(store.uncommitted_ids()))
            report = store.repair()
            removed += len(report.removed)
            if report.skipped:  # the writer is reaped: nothing can still be creating them
                forced_report = store.repair(force=True)
                removed += len(forced_report.removed)
                forced += len(forced_report.removed)
            trial_s.append(time.monotonic() - t0)
        final = EpisodeStore.open(url, "r")
        final_ids = set(final.episode_ids())
        missing |= (reported | verified) - final_ids
        for episode_id in sorted(final_ids - set(corrupt)):
            try:
                KILL_TRIAL.check(final, episode_id)
            except Exception as exc:
                corrupt[episode_id] = f"{type(exc).__name__}: {exc}"[:300]
        left_uncommitted = len(final.uncommitted_ids())
    finally:
        for pid in children:  # a writer the loop did not get to kill
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if zygote.stdin and not zygote.stdin.closed:
            zygote.stdin.close()  # end of input: the zygote reaps nothing more and exits
        try:
            zygote.wait(timeout=10)
        except subprocess.TimeoutExpired:
            zygote.kill()
            zygote.wait(timeout=10)
    lost = len(missing) + len(corrupt)
    return {
        "trials": trials,
        "kills": kills,
        "episodes_committed": len(final_ids),
        "episodes_reported": len(reported),
        "episodes_lost": lost,
        "missing": sorted(missing),
        "corrupt": corrupt,
        "uncommitted_repaired": removed,
        "forced": forced,
        "max_uncommitted_after_a_kill": max_uncommitted,
        "uncommitted_left": left_uncommitted,
        "writer_failures": lines.failures,
        "kill_delay_s": [0.0, KILL_MAX_DELAY_S],
        "trial_s": percentiles(trial_s, (50, 100)),
        "total_s": float(sum(trial_s)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trials", type=int, default=200, help="kill -9 trials")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: tmp)")
    args = ap.parse_args()
    if args.trials <= 0:
        ap.error("--trials must be > 0")
    with tempfile.TemporaryDirectory(prefix="bench_recording_kill_", dir=args.dir) as tmp:
        kill = kill_trials(args.trials, Path(tmp))
    print_table(
        f"kill -9 trials (writer SIGKILLed 0-{KILL_MAX_DELAY_S:g} s into recording)",
        KILL_HEADER,
        [
            [
                kill["trials"],
                kill["kills"],
                kill["episodes_committed"],
                kill["episodes_reported"],
                kill["episodes_lost"],
                kill["uncommitted_repaired"],
                kill["forced"],
                kill["trial_s"]["p50"],
                kill["trial_s"]["p100"],
            ]
        ],
    )
    if kill["episodes_lost"] or kill["writer_failures"]:
        print(f"  LOST: {kill['missing']} {kill['corrupt']}")
        print(f"  writer failures: {kill['writer_failures']}")
    write_json(
        "recording_kill",
        {"params": {"trials": args.trials, "cpu_count": os.cpu_count()}, "kill_trials": kill},
    )
    if kill["episodes_lost"]:
        raise SystemExit(f"{kill['episodes_lost']} committed episode(s) lost in kill trials")


if __name__ == "__main__":
    main()
