"""Practice: the off-policy learner that makes a policy better from its own attempts.

See :mod:`policy.learner.learner` for the object the learner node and ``bench/practice.py``
drive, :mod:`policy.learner.replay` for transitions and buffers, :mod:`policy.learner.rewards`
for the critic's anchored potential, :mod:`policy.learner.agent` for the Q-based actors, and
:mod:`policy.learner.distil` for the distillation into the VLA itself (``learner.actor=distil``).
"""
