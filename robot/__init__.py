"""The robot's side of vla-dojo: schema, arms, cameras, safety, chunk execution, MuJoCo twin.

Nothing here imports ROS or hydra, and hardware SDKs are imported lazily inside the driver that
needs them, so ``import robot`` works on a laptop.
"""
