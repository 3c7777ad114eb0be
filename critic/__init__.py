"""Progress critics: rewards and done signals from pairs of observations and an instruction."""
