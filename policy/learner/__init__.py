"""Practice: the off-policy learner that makes a policy better from its own attempts.

See :mod:`policy.learner.learner` for the object the learner node and ``bench/practice.py``
drive, :mod:`policy.learner.replay` for transitions and buffers, :mod:`policy.learner.rewards`
for the critic's anchored potential, and :mod:`policy.learner.agent` for the algorithm.
"""
