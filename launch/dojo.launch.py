"""``ros2 launch vla_dojo dojo.launch.py robot:=so101 policy_checkpoint:=... namespace:=arm1``:
the graph ``dojo run`` starts for the same configuration.

Every ``name:=value`` is a config key (``sim.clock:=lockstep``, or ``sim_clock:=lockstep``);
``overrides:="a=1 b=2"`` passes hydra overrides as they are. ``ros2 launch -s`` lists the
common ones. The nodes, their parameters, environment and order come from ``dojo/graph.py``
(``vla_dojo_launch`` says how).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vla_dojo_launch import generate


def generate_launch_description():
    return generate("run")
