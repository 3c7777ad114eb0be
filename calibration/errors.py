"""The one error type of calibration: bad input, said with what is wrong and what to do."""

from __future__ import annotations


class CalibrationError(ValueError):
    """A calibration cannot be done or trusted as asked (too few board views, a degenerate set
    of poses, a file for another camera or resolution, a NaN). The message says what is wrong
    and what to do about it."""
