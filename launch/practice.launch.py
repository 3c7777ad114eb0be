"""``ros2 launch vla_dojo practice.launch.py store:=runs.zarr [name:=value ...]``: the graph
``dojo practice`` starts: the policy acts, a person may take over, every episode is recorded,
and the off-policy learner trains on the store and pushes checkpoints to the policy.

Written generically: the node list is whatever ``dojo.graph.build`` returns for the practice
configuration, so the learner node joins when ``graph.build`` lists it, with no change here.
Until the ``practice`` command exists, the configuration is ``dojo record``'s.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vla_dojo_launch import generate


def generate_launch_description():
    return generate("practice", required={"store": "episode store to record to (store=)"})
