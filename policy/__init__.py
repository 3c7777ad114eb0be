"""VLA models, action chunking at inference, supervised fine-tuning and the RL learner."""
