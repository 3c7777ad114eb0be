"""``ros2 launch vla_dojo record.launch.py store:=demos.zarr [name:=value ...]``: the graph
``dojo record`` starts; the recorder writes every episode to ``store``. With a person:
``intervention_enabled:=true intervention_device:=keyboard``, then ``dojo console out=...`` in
a terminal of the person's own (the launch prints the line): the keyboard and the operator
console run there, and the launch ends when that console does."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vla_dojo_launch import generate


def generate_launch_description():
    return generate("record", required={"store": "episode store to record to (store=)"})
