#!/bin/bash
# The workstation image's entrypoint: ROS 2 sourced, vla-dojo's venv on the ament prefix path,
# then the command: `ros2 launch vla_dojo FILE name:=value ...` (the default), `dojo ...`, or
# anything else.
set -eo pipefail
# shellcheck disable=SC1090
source "/opt/ros/${ROS_DISTRO}/setup.bash"
export AMENT_PREFIX_PATH="${VLA_DOJO_PREFIX}${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="${PATH}:${VLA_DOJO_PREFIX}/bin"  # ROS's ros2 first; dojo from the venv
if [ "${1:-}" = "dojo" ]; then
  shift
  exec "${VLA_DOJO_PREFIX}/bin/dojo" "$@"
fi
exec "$@"
