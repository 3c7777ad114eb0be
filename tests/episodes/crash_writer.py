"""The recording process the crash trials kill, and the episodes it records.

Run as a script it opens (or creates) a store and records :data:`CRASH_TRIAL` episodes,
forever or ``--episodes N`` of them, printing ``READY`` once the store is open and
``COMMITTED <id> <seed> <digest>`` only after each ``commit`` has returned::

    python tests/episodes/crash_writer.py STORE_URL [--episodes N] [--seed-base S]

What an episode holds, and how to check one, is :class:`episodes.synthetic.SeededEpisodes`
(the benchmark's kill trials, ``bench/recording_kill_writer.py``, use the same with larger
episodes). Imported, it gives the tests the same robot, configuration and data.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script from anywhere: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from episodes.store import EpisodeStore
from episodes.synthetic import SeededEpisodes, data_digest

CRASH_TRIAL = SeededEpisodes(
    robot="crash_arm",
    joints=("shoulder", "elbow", "gripper"),
    cameras=(("top", 32, 24, "jpeg"), ("wrist", 32, 24, "zstd")),
    task="crash-trial",
    min_steps=3,  # 3..19 steps: partial and whole chunks, one or more growths
    step_spread=17,
    lowdim_chunk_steps=4,
    growth_steps=8,
    jpeg_quality=85,
    failures=True,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--episodes", type=int, default=0, help="stop after N (0: never)")
    parser.add_argument("--seed-base", type=int, default=None)
    args = parser.parse_args(argv)
    trial = CRASH_TRIAL
    store = EpisodeStore.open_or_create(args.url, trial.spec(), trial.fps, trial.config())
    base = args.seed_base if args.seed_base is not None else (os.getpid() % 10_000) * 1000
    print("READY", flush=True)

    def committed(episode_id: str, seed: int) -> None:
        print(f"COMMITTED {episode_id} {seed} {data_digest(trial.data(seed))}", flush=True)

    trial.record_forever(store, base, committed, episodes=args.episodes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
