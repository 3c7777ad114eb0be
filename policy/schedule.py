"""Training budgets and the learning-rate schedule over them, for every trainer here.

A run ends at ``steps`` or after ``seconds`` of wall clock, whichever comes first: a benchmark
gives two methods the same time, a user says "train for 20 minutes". The schedule must follow
*that* budget. Scheduled over ``steps`` alone, a time-budgeted run (``steps=1000000
seconds=240``) stopped at 0.1% of its cosine and so at the peak learning rate: the weights it
kept were the noisiest of the run. Here the schedule's position is the fraction of whichever
budget ends the run, so the rate reaches its floor as the run ends, by steps or by seconds.

    budget = Budget(steps=2000, seconds=600)
    lr = base_lr * warmup_cosine(step, budget.fraction(step, elapsed), warmup=100, floor=0.1)

:class:`BudgetBar` is the progress bar that shows that budget: seconds when a time budget is
set (its ETA is then the run's end, not the 50 hours that a million nominal steps predict),
steps otherwise, with the step count and loss beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """``steps`` (>= 1) and ``seconds`` (0: no time budget); the run ends at the first.
    ``warmup`` steps are capped at ``steps - 1``, so the cosine always has a step to run."""

    steps: int
    seconds: float = 0.0
    warmup: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"budget: steps={self.steps} must be >= 1")
        if self.seconds < 0:
            raise ValueError(f"budget: seconds={self.seconds} must be >= 0 (0: no time budget)")
        object.__setattr__(self, "warmup", max(0, min(self.warmup, self.steps - 1)))

    def fraction(self, step: int, elapsed: float) -> float:
        """Where the run is in ``[0, 1]``: the larger of the step and time fractions. The step
        fraction counts from the end of warmup, as a warmup-then-cosine schedule does."""
        span = max(1, self.steps - self.warmup)
        by_steps = (step - self.warmup) / span
        by_time = elapsed / self.seconds if self.seconds > 0 else 0.0
        return min(1.0, max(0.0, by_steps, by_time))

    def exhausted(self, step: int, elapsed: float) -> str | None:
        """``"steps"`` or ``"seconds"`` once that budget is spent, else ``None``."""
        if step >= self.steps:
            return "steps"
        if self.seconds > 0 and elapsed >= self.seconds:
            return "seconds"
        return None


def warmup_cosine(step: int, fraction: float, *, warmup: int, floor: float) -> float:
    """Multiplier of the base rate: linear warmup over ``warmup`` steps, then a cosine from 1
    down to ``floor`` as ``fraction`` (:meth:`Budget.fraction`) goes from 0 to 1."""
    if step < warmup:
        return (step + 1) / warmup
    f = min(1.0, max(0.0, fraction))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * f))


def progress_bar(total: int, desc: str, unit: str = "it", **kwargs):
    """The tqdm bar every loop here shows (loading, evaluating, relabelling): quiet when stderr
    is not a terminal (``disable=None``), so logs and CI output get no carriage returns."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None, **kwargs)


class BudgetBar:
    """A tqdm bar over the budget that ends the run; ``update(step, elapsed, **postfix)``."""

    def __init__(self, budget: Budget, desc: str, initial_step: int = 0, elapsed: float = 0.0):
        from tqdm import tqdm

        self.budget = budget
        self.by_time = budget.seconds > 0
        if self.by_time:
            self.bar = tqdm(
                total=round(budget.seconds),
                initial=min(round(elapsed), round(budget.seconds)),
                desc=f"{desc} ({budget.seconds:.0f} s budget)",
                unit="s",
                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]",
                disable=None,
            )
        else:
            self.bar = tqdm(
                total=budget.steps, initial=initial_step, desc=desc, unit="step", disable=None
            )

    def update(self, step: int, elapsed: float, **postfix) -> None:
        n = min(elapsed, self.budget.seconds) if self.by_time else step
        self.bar.update(n - self.bar.n)
        if self.by_time:
            postfix = {"step": step, **postfix}
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        self.bar.close()
