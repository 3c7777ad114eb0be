"""``camera``: one real camera (RealSense or UVC) on the ROS graph; one node per camera.

Publishes (relative names, so a namespace per robot works; sensor-data QoS)::

    camera/<name>/image_raw    sensor_msgs/Image rgb8, stamped with the device timestamp mapped
                               to ROS time (robot.cameras.clock.ClockSync)
    camera/<name>/depth        sensor_msgs/Image 16UC1 (mm for RealSense: depth_scale in the
                               status), aligned to colour when configured; only with depth
    camera/<name>/camera_info  from the calibration file (ROS camera_calibration YAML) when it
                               exists, else the device's own intrinsics when it reports them
    camera/<name>/status       std_msgs/String JSON: frames, stale, reconnects, drift_ppm, ...

Parameters: ``config_file`` (the resolved config, as every node) and ``camera`` (the
``camera.devices[*].name`` this node runs). The capture thread, staleness and reconnects are
the library's (``robot.cameras``); this node only converts frames to messages.
"""

from __future__ import annotations

import json
import os
import threading

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from dojo import conf
from dojo.nodes.base import node_config, ros_time, spin_node
from dojo.ros import convert, topics
from robot.cameras.base import Camera, Frame
from robot.cameras.registry import Calibration, load_calibration, make_camera
from robot.schema import SchemaError


def depth_to_msg(depth: np.ndarray, stamp: float, frame_id: str) -> Image:
    """``(H, W)`` uint16 depth as a ``16UC1`` Image (little-endian, as the data is)."""
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise SchemaError(f"depth must be (H, W) uint16, got {depth.shape} {depth.dtype}")
    h, w = depth.shape
    msg = Image()
    msg.header.stamp = convert.to_time(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = h, w
    msg.encoding = "16UC1"
    msg.is_bigendian = 0
    msg.step = w * 2
    msg.data = np.ascontiguousarray(depth, dtype="<u2").tobytes()
    return msg


def depth_from_msg(msg: Image) -> tuple[np.ndarray, float]:
    if msg.encoding != "16UC1":
        raise SchemaError(f"depth image encoding {msg.encoding!r} is not 16UC1")
    dtype = ">u2" if msg.is_bigendian else "<u2"
    arr = np.frombuffer(bytes(msg.data), dtype=dtype).reshape(msg.height, msg.step // 2)
    return arr[:, : msg.width].astype(np.uint16), convert.from_time(msg.header.stamp)


def calibration_to_msg(cal: Calibration, stamp: float, frame_id: str) -> CameraInfo:
    msg = convert.camera_info_to_msg(cal.width, cal.height, cal.K, stamp, frame_id)
    msg.distortion_model = cal.distortion_model
    msg.d = [float(x) for x in cal.D]
    msg.r = cal.R.reshape(-1).tolist()
    msg.p = cal.P.reshape(-1).tolist()
    return msg


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__("camera")
        self.declare_parameter("config_file", "")
        self.declare_parameter("camera", "")
        cfg = node_config(self)
        name = self.get_parameter("camera").get_parameter_value().string_value
        devices = {d["name"]: d for d in conf.camera_devices(cfg)}
        if name not in devices:
            raise conf.ConfigError(
                f"camera node: parameter camera={name!r} is not in camera.devices "
                f"({sorted(devices)})"
            )
        dev = devices[name]
        self.cam_name = name
        self.frame_id = f"{name}_optical"
        self.calibration: Calibration | None = None
        cal_path = dev.get("calibration") or ""
        if cal_path and os.path.isfile(cal_path):
            self.calibration = load_calibration(cal_path)
            self.get_logger().info(f"camera_info from {cal_path}")
        elif cal_path:
            self.get_logger().warning(
                f"calibration file {cal_path} does not exist; camera_info from the device"
            )
        self.camera: Camera = make_camera(
            dev,
            clock=lambda: ros_time(self),
            stale_periods=float(cfg.camera.stale_periods),
            reconnect_after=float(cfg.camera.reconnect_after),
        )
        self.pub_image = topics.camera_image(name).publisher(self)
        self.pub_info = topics.camera_info(name).publisher(self)
        self.pub_depth = topics.camera_depth(name).publisher(self) if dev.get("depth") else None
        self.pub_status = topics.camera_status(name).publisher(self)
        self.published = 0
        self._lock = threading.Lock()
        self.camera.subscribe(self._on_frame)
        self.camera.start()  # a device that cannot be opened fails here, naming it
        self.create_timer(1.0 / float(cfg.camera.status_hz), self._publish_status)
        self.get_logger().info(f"streaming {self.camera} as {self.pub_image.topic_name}")

    def _on_frame(self, frame: Frame) -> None:
        """On the capture thread: convert and publish."""
        if not self.context.ok():
            return
        self.pub_image.publish(convert.image_to_msg(frame.color, frame.stamp, self.frame_id))
        if self.pub_depth is not None and frame.depth is not None:
            self.pub_depth.publish(depth_to_msg(frame.depth, frame.stamp, self.frame_id))
        info = self._info(frame)
        if info is not None:
            self.pub_info.publish(info)
        with self._lock:
            self.published += 1

    def _info(self, frame: Frame) -> CameraInfo | None:
        if self.calibration is not None:
            return calibration_to_msg(self.calibration, frame.stamp, self.frame_id)
        intr = self.camera.intrinsics()
        if intr is None:
            return None
        return convert.camera_info_to_msg(
            intr.width, intr.height, intr.K, frame.stamp, self.frame_id
        )

    def _publish_status(self) -> None:
        status = self.camera.status()
        status["published"] = self.published
        status["depth_scale"] = getattr(self.camera, "depth_scale", None)
        if status.get("age_s") == float("inf"):
            status["age_s"] = None
        self.pub_status.publish(String(data=json.dumps(status)))

    def close(self) -> None:
        self.camera.stop()


def main() -> None:
    raise SystemExit(spin_node(CameraNode))


if __name__ == "__main__":
    main()
