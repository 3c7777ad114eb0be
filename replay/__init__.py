"""Sim-to-real replay: recorded episodes driven through the MuJoCo twin, reports, twin fits.

Why a package of its own: replaying real data in the twin is how a new checkpoint, safety
configuration or robot preset is checked before it goes near the hardware, and it needs the
store (``episodes``), the control path and the twin (``robot``) and, for ``mode=policy``, a
chunk policy (``policy``) together. The command is ``dojo replay`` (``dojo/replay_cmd.py``).
"""
