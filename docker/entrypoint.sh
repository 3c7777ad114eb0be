#!/bin/bash
# The workstation image's entrypoint: ROS 2 sourced, vla-dojo's venv on the ament prefix path,
# then the command: `ros2 launch vla_dojo FILE name:=value ...` (the default), `dojo ...`, or
# anything else.
#
# Without a ROS 2 install (an image built on a base without the `ros` stage, as
# docker/local-base.sh does) it says so on stderr and runs the command anyway: `dojo` and the
# venv's rclpy work from PyPI's wheels; `ros2` itself is refused with the reason.
set -eo pipefail
ros_setup="${VLA_DOJO_ROS_SETUP:-/opt/ros/${ROS_DISTRO}/setup.bash}"
if [ -n "${ROS_DISTRO}" ] && [ -f "${ros_setup}" ]; then
  # shellcheck disable=SC1090
  source "${ros_setup}"
  ros=1
else
  echo "vla-dojo-entrypoint: no ROS 2 here (${ros_setup} does not exist; ROS_DISTRO='${ROS_DISTRO}'):" \
    "running without it; dojo and the venv's rclpy work, ros2 launch and robot_state_publisher" \
    "need the image's ROS stage" >&2
  ros=0
fi
export AMENT_PREFIX_PATH="${VLA_DOJO_PREFIX}${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="${PATH}:${VLA_DOJO_PREFIX}/bin"  # ROS's ros2 first; dojo from the venv
if [ "${1:-}" = "dojo" ]; then
  shift
  exec "${VLA_DOJO_PREFIX}/bin/dojo" "$@"
fi
if [ "${1:-}" = "ros2" ] && [ "${ros}" = 0 ] && ! command -v ros2 >/dev/null; then
  echo "vla-dojo-entrypoint: cannot run '$*': ros2 comes with ROS 2, which this image lacks" >&2
  exit 127
fi
exec "$@"
