"""``ros2 launch vla_dojo record.launch.py store:=demos.zarr [name:=value ...]``: the graph
``dojo record`` starts; the recorder writes every episode to ``store``. With a person:
``intervention_enabled:=true intervention_device:=keyboard`` (the keyboard gets a terminal of
its own through ``terminal_prefix``, default ``xterm -e``)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vla_dojo_launch import generate


def generate_launch_description():
    return generate("record", required={"store": "episode store to record to (store=)"})
