"""The operator's console for ``dojo record`` with a person: episodes, the status line, the keys.

    dojo record intervention.enabled=true intervention.device=keyboard store=demos.zarr

Three pieces, none of which imports ROS:

- :mod:`dojo.console.session`: :class:`~dojo.console.session.Console`, the episode state
  machine: the person's buttons in, service requests out (``sim/reset``, ``episode/start``,
  ``episode/stop``, ``episode/abort``); the ROS shell (``dojo/nodes/operator_console.py``)
  executes them.
- :mod:`dojo.console.display`: :class:`~dojo.console.display.StatusDisplay`, the status line
  and the prompt kept on the terminal's last rows while the nodes' logs scroll above.
- :mod:`dojo.console.keys`: :class:`~dojo.console.keys.KeyRelay`, how the keyboard device gets
  the person's terminal without being in its foreground process group.

No node calls ``input()`` or reads the person's terminal; every wait here is bounded.
"""
