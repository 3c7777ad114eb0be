"""What several training processes must agree on, and what each must not share.

Why this module: ``accelerate launch`` starts one process per GPU (or several on a CPU, with
the gloo backend), and wrapping the model in DDP only averages gradients. Everything else is
the trainer's job, and getting it wrong fails quietly or hangs:

- **Data.** Processes that draw batches with the same seed from the same rows train on the
  same data W times: W GPUs cost W times as much and learn what one learns. Here process
  ``r`` of ``W`` owns the rows ``r, r + W, r + 2W, ...`` (:class:`ShardedSampler`) and draws
  from them with its own random stream, so the processes' batches are disjoint by
  construction, whatever the weights and however small the data set; rows are strided, not
  split in blocks, so every process sees every episode of a store written episode by episode.
- **When to stop.** A process that checks a wall-clock budget on its own clock stops one step
  before or after the others; the ones left wait forever in the next gradient all-reduce. And
  a learning rate scheduled on each process's own elapsed time differs between processes by
  a little every step, so the replicas' weights drift apart even though their gradients are
  averaged. :class:`AgreedBudget` lets the main process decide (stop or not, and the elapsed
  time the schedule uses) and broadcasts that decision, one small collective per step: every
  process stops on the same step with the same learning rate.
- **Files.** Only the main process writes checkpoints and logs (:attr:`Processes.is_main`),
  and everyone waits for it at the end (:meth:`Processes.barrier`), so a caller on any process
  finds the final checkpoint on disk.

With one process every helper here does exactly what a single-process trainer did (the same
random draws from the same seed), so nothing changes for a run on one CPU or one GPU.

    procs = Processes.of(accelerator)
    rng = process_rng(seed, procs)
    sampler = ShardedSampler(len(data), procs, weights=w)
    budget = AgreedBudget(Budget(steps, seconds), procs)
    while not (decision := budget.check(step, clock() - start)).stop:
        rows = sampler.sample(rng, batch_size)
        lr = schedule(step, decision.elapsed)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from policy.schedule import Budget

# stop reasons on the wire: a float per reason, 0 is "go on"
_REASONS = (None, "steps", "seconds")


@dataclass(frozen=True)
class Processes:
    """Who this process is among the training processes: ``rank`` of ``world``.

    ``device``: where collective tensors live (a CUDA device under NCCL, the CPU under gloo).
    One process (the default) needs no process group and does no communication.
    """

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ValueError(f"processes: rank={self.rank} must be in [0, world={self.world})")

    @classmethod
    def of(cls, accelerator: Any) -> Processes:
        """The processes an ``accelerate.Accelerator`` (or ``PartialState``) runs in."""
        return cls(
            int(accelerator.process_index),
            int(accelerator.num_processes),
            torch.device(accelerator.device),
        )

    @classmethod
    def current(cls, cpu: bool = True) -> Processes:
        """The processes this one was launched among (``accelerate launch``, ``torchrun``:
        ``WORLD_SIZE`` > 1), joining their process group; ``cpu``: collectives on the CPU
        (gloo), for a trainer that keeps its tensors there. A process started alone touches
        no accelerate state (its ``Accelerator`` may still be made later with other options)."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        from accelerate import PartialState

        return cls.of(PartialState(cpu=cpu))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def broadcast(self, values: Iterable[float]) -> np.ndarray:
        """The main process's ``values`` on every process (float64, one collective)."""
        local = np.asarray(list(values), dtype=np.float64)
        if not self.distributed:
            return local
        import torch.distributed as dist

        t = torch.from_numpy(local).to(self.device)
        dist.broadcast(t, src=0)
        return t.cpu().numpy()

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is True on any (e.g. a non-finite loss: all
        stop together instead of one raising while the others wait for it)."""
        if not self.distributed:
            return bool(flag)
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Average the gradients over the processes, for a model that is not wrapped in DDP
        (one whose loss is computed through several of its methods, not ``forward``).

        A parameter that took no part in this process's loss (a head used only by some batches)
        gets a zero gradient, as DDP gives it: every process then sends the same tensors, and
        the average counts this process's zero."""
        if not self.distributed:
            return
        import torch.distributed as dist

        params = [p for p in parameters if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Give every process the main process's weights and buffers (DDP does this when it
        wraps a model; a model that is not wrapped needs it once before training)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()


def process_seed(seed: int, processes: Processes, *extra: int) -> int:
    """This process's seed: ``seed`` itself for one process (so a single-process run draws
    what it always drew), a distinct one per rank otherwise. ``extra`` (e.g. the step a run
    resumes at) gives a fresh seed whose stream does not replay earlier draws."""
    if not processes.distributed and not extra:
        return int(seed)
    sequence = np.random.SeedSequence([int(seed), processes.rank, processes.world, *extra])
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


def process_rng(seed: int, processes: Processes, *extra: int) -> np.random.Generator:
    """This process's random stream, from :func:`process_seed`."""
    return np.random.default_rng(process_seed(seed, processes, *extra))


def seed_torch(seed: int, processes: Processes, *extra: int) -> None:
    """Seed torch's global generator (augmentation, masks) with :func:`process_seed`: replicas
    that shifted every image the same way would see less variety than one process with the
    whole batch."""
    torch.manual_seed(process_seed(seed, processes, *extra))


class ShardedSampler:
    """Batch rows for one process: rank ``r`` of ``W`` draws only from the rows
    ``r, r + W, r + 2W, ...`` of ``n`` (with replacement, optionally weighted), so two
    processes never draw the same row. One process draws from all rows, exactly as
    ``rng.integers(0, n, size)`` (or ``rng.choice(n, size, p=weights)``) would.

    ``weights``: a non-negative weight per row (normalised here, per shard), or None.
    """

    def __init__(self, n: int, processes: Processes, weights: np.ndarray | None = None) -> None:
        if n < processes.world:
            raise ValueError(
                f"sampler: {n} rows cannot be shared by {processes.world} processes "
                "(each needs at least one)"
            )
        self.processes = processes
        self.n = int(n)
        self.rows = np.arange(processes.rank, n, processes.world)
        self.p: np.ndarray | None = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError(f"sampler: weights must be {n} finite values >= 0")
            w = w[self.rows]
            if w.sum() <= 0:
                raise ValueError(f"sampler: process {processes.rank}'s rows all weigh 0")
            self.p = w / w.sum()

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` row indices (into the whole data set) from this process's shard."""
        k = len(self.rows)
        if self.p is None:
            picks = rng.integers(0, k, size)
        else:
            picks = rng.choice(k, size=size, p=self.p)
        return self.rows[picks]


@dataclass(frozen=True)
class Decision:
    """The main process's verdict at one step: ``stop`` (why, or None) and the ``elapsed``
    seconds of training that every process schedules its learning rate on."""

    stop: str | None
    elapsed: float


class AgreedBudget:
    """A :class:`~policy.schedule.Budget` that the main process judges for everyone.

    ``check(step, elapsed)`` is called by every process at the top of each step with its own
    step count and clock; the main process's view is broadcast and returned on all of them.
    """

    def __init__(self, budget: Budget, processes: Processes) -> None:
        self.budget = budget
        self.processes = processes

    def check(self, step: int, elapsed: float) -> Decision:
        reason = self.budget.exhausted(step, elapsed)
        code, agreed = self.processes.broadcast([_REASONS.index(reason), elapsed])
        return Decision(_REASONS[int(code)], float(agreed))
