"""Teleop devices, intervention arbitration rules, and scripted operators for the twin."""
