"""Checksums of stored arrays: a BLAKE2b digest per chunk, combined per array.

Why the stored chunk bytes and not the decoded values: verification then needs no decoding
(images stay lazy, a learner can verify an episode by reading its bytes once), it does not
depend on the libjpeg build of the reading machine, and it catches exactly what can go wrong
on a disk or in an object store (a truncated, zeroed or flipped chunk object). The price: a
store copied with another compression must be re-checksummed (``EpisodeStore.repair`` does not
do that; copy chunk objects as they are).

Why BLAKE2b and not xxhash: it is in ``hashlib`` on every Python, so a store written on one
machine verifies on any other; at ~1 GB/s it costs less than the JPEG encode of the same frame.

The array checksum is ``"blake2b128:" + hex`` of BLAKE2b-128 over, for every chunk of the
array's chunk grid in C order, the array's name within its episode and the chunk key
(``obs/images/top/c/12/0/0/0``), a NUL, and the 16-byte digest of that chunk's stored bytes.
Names and keys are part of the hash so that swapped or renamed chunks or arrays do not verify;
the episode's own id is not, so a checksum survives copying an episode to another store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

ALGORITHM = "blake2b128"
_DIGEST_SIZE = 16


def chunk_digest(data: bytes | bytearray | memoryview) -> bytes:
    """The 16-byte digest of one stored chunk."""
    return hashlib.blake2b(data, digest_size=_DIGEST_SIZE).digest()


def combine(chunks: Iterable[tuple[str, bytes]]) -> str:
    """Combine ``(array name/chunk key, chunk digest)`` pairs, in grid order, into a checksum."""
    h = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    for key, digest in chunks:
        if len(digest) != _DIGEST_SIZE:
            raise ValueError(f"chunk '{key}': digest has {len(digest)} bytes, not {_DIGEST_SIZE}")
        h.update(key.encode("utf-8"))
        h.update(b"\0")
        h.update(digest)
    return f"{ALGORITHM}:{h.hexdigest()}"


def algorithm_of(checksum: str) -> str:
    """The algorithm name a stored checksum string was made with (``"blake2b128"``)."""
    return checksum.split(":", 1)[0] if ":" in checksum else ""
