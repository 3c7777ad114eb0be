"""The errors of the episode store; every message names the store, the episode, the array."""

from __future__ import annotations


class StoreError(RuntimeError):
    """The store refused or failed an operation. The message names the store, episode, array."""


class ChecksumError(StoreError):
    """A stored array does not match the checksum recorded when its episode was committed."""


class EpisodeNotFoundError(StoreError, LookupError):
    """No committed episode of that id in the store."""
