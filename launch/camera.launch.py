"""``ros2 launch vla_dojo camera.launch.py camera:=<preset> [name:=value ...]``: only the camera
nodes of the graph (one per configured real camera), e.g. to check the cameras, or to run them
on another machine than the arm. Same configuration keys as ``dojo.launch.py``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vla_dojo_launch import generate


def generate_launch_description():
    return generate("run", modules=("dojo.nodes.camera",))
