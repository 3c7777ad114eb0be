"""Teleop devices (keyboard, gamepad, spacemouse, leader arm: :mod:`teleop.registry`),
end-effector commands to joint targets (:mod:`teleop.ee_control`), the intervention arbitration
rules (:mod:`teleop.arbitration`), and the scripted operator that plays the person in the twin
(:mod:`teleop.scripted`)."""
