"""Camera intrinsics, hand-eye, motor offsets and latency calibration."""
