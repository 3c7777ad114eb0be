"""The zarr episode store and what moves episodes in and out of it.

- ``episodes.store``: :class:`~episodes.store.EpisodeStore` (create, open, list, read, rewards);
  ``episodes.writer`` records one episode, ``episodes.repair`` deals with what a crash left,
  ``episodes.codec`` compresses frames, ``episodes.backend`` is the zarr/fsspec plumbing under
  them, ``episodes.errors`` their errors, ``episodes.checksum`` the checksums over chunk bytes;
- ``episodes.align``: the recorder's streams aligned to the record grid;
- ``episodes.lerobot``: LeRobotDataset import and export;
- ``episodes.view``: contact sheets, videos and rerun recordings of stored episodes;
- ``episodes.synthetic``: seed-determined robots and episodes for tests, crash trials and
  benchmarks.

Sampling episodes for training is the learner's (``policy.data``), not this package's.
"""
