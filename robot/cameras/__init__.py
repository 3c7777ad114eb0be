"""Cameras: RealSense and UVC/V4L2 drivers behind one :class:`~robot.cameras.base.Camera`.

Every driver yields :class:`~robot.cameras.base.Frame` objects stamped in host/ROS time from
the device's own clock, goes stale after 2 frame periods without a new frame and reconnects by
itself. SDKs (``pyrealsense2``, ``cv2``) are imported inside the drivers, so importing this
package needs neither. Build one from config with :func:`robot.cameras.registry.make_camera`.
"""

from robot.cameras.base import Camera, CameraError, Frame, RawFrame
from robot.cameras.clock import ClockSync

__all__ = ["Camera", "CameraError", "ClockSync", "Frame", "RawFrame"]
