#!/bin/sh
# usage: launch/link-into-prefix.sh PREFIX
#
# What `ros2 launch vla_dojo FILE` and `ros2 run vla_dojo NODE` need under PREFIX, as symlinks
# into this checkout: an editable install (`pip install -e`, what `make` does) installs no data
# files, and links keep the installed launch files the ones being edited. A regular install
# (`pip install .`, the Docker image) installs the same files from pyproject.toml's data-files.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:?usage: $0 PREFIX}
index="$prefix/share/ament_index/resource_index/packages"
mkdir -p "$index" "$prefix/share/vla_dojo/launch" "$prefix/lib/vla_dojo"
ln -sfn "$here/resource/vla_dojo" "$index/vla_dojo"
ln -sfn "$here/package.xml" "$prefix/share/vla_dojo/package.xml"
for f in "$here"/*.launch.py "$here/vla_dojo_launch.py"; do
  ln -sfn "$f" "$prefix/share/vla_dojo/launch/$(basename "$f")"
done
for f in "$here"/lib/*; do
  ln -sfn "$f" "$prefix/lib/vla_dojo/$(basename "$f")"
done
