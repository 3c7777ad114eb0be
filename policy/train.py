"""Supervised fine-tuning of the compact VLA on demonstrations from the store.

    Trainer(PolicyTrainConfig(stores=["demos.zarr"], out="runs/policy1"), ...).run()

What a run leaves in ``out``::

    checkpoint/            the latest weights (policy.compact format): what `dojo eval` and the
                           policy node load
    best/                  the weights with the best evaluation success so far (if evaluated)
    train_state.safetensors + train_state.json
                           optimiser moments, step, RNG state: resume after an interruption
    log.jsonl              one line per logging interval and per evaluation
    training.png           loss and success curves

Resume: running again with the same ``out`` continues from the last checkpoint (the step count,
optimiser and RNG state are restored; the data set is rebuilt from the store). A config that
changes the model's shape is refused rather than silently starting over.

Several processes (GPUs) go through ``accelerate``::

    accelerate launch --multi_gpu --num_processes 2 -m dojo.cli train policy store=... out=...

(on a machine without GPUs the same command runs two CPU processes over gloo). Each process
draws its batches from its own shard of the rows (:mod:`policy.distributed`), so the processes
train on disjoint data and the effective batch is ``batch_size`` times the number of
processes; the main process decides when the budget is spent and what elapsed time the
learning rate follows, and broadcasts it, so every process stops on the same step with the
same weights; only the main process writes checkpoints, logs and the plot, and evaluates.
With one process (``dojo train policy`` alone) nothing of this costs anything.

Budget: ``steps`` and/or ``seconds`` (wall clock), whichever comes first, so a benchmark can
give two methods the same time. The learning rate warms up over ``warmup`` steps and then
decays along a cosine to ``lr_floor`` of its peak over the fraction of whichever budget ends the
run (:mod:`policy.schedule`), so a time-budgeted run ends at its floor too.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from policy.compact import save_checkpoint
from policy.config import PolicyTrainConfig
from policy.data import DemoDataset, random_shift
from policy.distributed import AgreedBudget, Processes, ShardedSampler, process_rng, seed_torch
from policy.models.encoders import TextEncoder, images_to_tensor
from policy.models.vla import CompactVLA
from policy.schedule import Budget, BudgetBar, warmup_cosine
from policy.threads import ThreadGovernor, default_threads

STATE_FILE = "train_state"


class AveragedWeights:
    """An exponential moving average of a model's floating-point state (weights and buffers).

    ``swapped_in(model)`` puts the average into the model for the duration of a ``with`` (to
    save or evaluate it) and restores the raw weights after, so training continues on them."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, decay: float) -> None:
        for k, v in model.state_dict().items():
            avg = self.state[k]
            if avg.is_floating_point():
                avg.mul_(decay).add_(v.detach().cpu(), alpha=1.0 - decay)
            else:
                avg.copy_(v)

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        if set(tensors) != set(self.state):
            raise TrainError("train_state: the saved weight average does not match the model")
        self.state = {k: v.clone() for k, v in tensors.items()}

    @contextlib.contextmanager
    def swapped_in(self, model: torch.nn.Module):
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state)
        try:
            yield model
        finally:
            model.load_state_dict(raw)


class TrainError(ValueError):
    """The run cannot start or resume; the message names why."""


def _optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimiser's state into tensors (safetensors) and JSON, no pickle."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, float]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v) and v.ndim > 0:
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = float(v)
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _load_optimizer_state(opt, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for pid, sc in meta["scalars"].items():
        for k, v in sc.items():
            state.setdefault(int(pid), {})[k] = torch.tensor(v)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class Trainer:
    """One training run. ``evaluate(checkpoint_dir) -> dict`` (with ``success_rate``) is called
    every ``eval_every`` steps; the CLI passes one that rolls the policy out in the twin."""

    def __init__(
        self,
        config: PolicyTrainConfig,
        *,
        joint_names: list[str],
        cameras: list[str],
        evaluate: Callable[[Path], dict[str, Any]] | None = None,
        text: TextEncoder | None = None,
        dataset: DemoDataset | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from accelerate import Accelerator

        self.cfg = config
        self.clock = clock  # the wall clock the seconds budget is measured on
        torch.set_num_threads(config.threads or default_threads())
        torch.manual_seed(config.seed)  # the same initial weights on every process
        self.accel = Accelerator(cpu=not torch.cuda.is_available())
        self.procs = Processes.of(self.accel)
        self.rng = process_rng(config.seed, self.procs)
        self.out = Path(config.out)
        self.evaluate = evaluate
        self.text = text or TextEncoder()
        mcfg = replace(config.model, joint_names=list(joint_names), cameras=list(cameras))
        mcfg.validate()
        self.data = dataset or DemoDataset(
            config.stores,
            cameras=mcfg.cameras,
            joint_names=mcfg.joint_names,
            image_size=mcfg.image_size,
            horizon=mcfg.horizon,
            max_episodes=config.max_episodes,
            progress=config.progress and self.accel.is_main_process,
        )
        mcfg.chunk_dt = 1.0 / float(self.data.fps or 1.0 / mcfg.chunk_dt)
        for ins in self.data.instructions:
            self.text.check(ins)
        self.model = CompactVLA(mcfg)
        self.model.set_stats(**self.data.stats(mcfg.action_mode))
        if config.start_weight <= 0 or config.start_seconds < 0:
            raise TrainError(
                f"train: start_weight={config.start_weight} must be > 0 and start_seconds="
                f"{config.start_seconds} >= 0"
            )
        self.refresh_sampler()
        per_sample = [self.data.episodes[e].instruction for e in self.data.index[:, 0]]
        self.model.set_text_stats(self.text.encode(per_sample))
        if not 0.0 <= config.ema < 1.0:
            raise TrainError(f"train: ema={config.ema} must be in [0, 1) (0: no averaging)")
        self.ema = AveragedWeights(self.model) if config.ema else None
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.step = 0
        self.last_lr: float | None = None
        self.elapsed = 0.0
        self.history: list[dict[str, Any]] = []
        self.best = -1.0
        resumed = self._resume_if_possible()
        if self.procs.distributed:  # each process its own augmentation and batches
            seed_torch(config.seed, self.procs, self.step)
            if resumed:
                self.rng = process_rng(config.seed, self.procs, self.step)
        self.model, self.opt = self.accel.prepare(self.model, self.opt)
        # threads=0 on a lone CPU process: measured per step (policy.threads); several processes
        # share the cores, so each keeps its fixed share
        self.governor = (
            ThreadGovernor()
            if not config.threads and not self.procs.distributed and self.accel.device.type == "cpu"
            else None
        )

    def refresh_sampler(self) -> None:
        """Draw rows by the episode starts' weight (``start_weight``) times the data's own
        (:meth:`DemoDataset.row_weights`); called again after rows are added."""
        cfg, dt = self.cfg, float(self._unwrapped().config.chunk_dt)
        weights = self.data.row_weights()
        if cfg.start_weight != 1.0:
            early = self.data.index[:, 1] * dt < cfg.start_seconds
            start = np.where(early, cfg.start_weight, 1.0)
            weights = start if weights is None else weights * start
        try:
            self.sampler = ShardedSampler(len(self.data), self.procs, weights)
        except ValueError as err:
            raise TrainError(f"train: {err}") from None

    # -- persistence -----------------------------------------------------------------------------

    def _unwrapped(self) -> CompactVLA:
        return self.accel.unwrap_model(self.model)

    def _resume_if_possible(self) -> bool:
        meta_file = self.out / f"{STATE_FILE}.json"
        if not meta_file.exists():
            return False
        meta = json.loads(meta_file.read_text())
        if meta["model"] != self.model.config.to_json():
            diff = sorted(
                k for k in meta["model"] if meta["model"][k] != self.model.config.to_json().get(k)
            )
            raise TrainError(
                f"{self.out}: holds a run of a different model (differs in {diff}); "
                f"choose another out= or remove it"
            )
        tensors = load_file(str(self.out / f"{STATE_FILE}.safetensors"))
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state)
        if self.ema is not None:
            averaged = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
            # a run resumed with averaging newly on starts its average at the resumed weights
            self.ema = AveragedWeights(self.model)
            if averaged:
                self.ema.load(averaged)
        _load_optimizer_state(self.opt, tensors, meta["optimizer"])
        self.step = int(meta["step"])
        self.elapsed = float(meta.get("elapsed", 0.0))
        self.history = meta.get("history", [])
        self.best = float(meta.get("best", -1.0))
        torch.set_rng_state(tensors["rng.torch"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = meta["numpy_rng"]
        if self.procs.is_main:
            print(f"resuming {self.out} at step {self.step}", file=sys.stderr)
        return True

    def save(self) -> None:
        if not self.accel.is_main_process:
            return
        model = self._unwrapped()
        self.out.mkdir(parents=True, exist_ok=True)
        with self._published(model):
            save_checkpoint(model, self.out / "checkpoint", self._trained_meta())
        tensors, opt_meta = _optimizer_state(self.opt)
        tensors.update(
            {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        )
        if self.ema is not None:
            tensors.update({f"ema.{k}": v.contiguous() for k, v in self.ema.state.items()})
        tensors["rng.torch"] = torch.get_rng_state()
        tmp = self.out / f".{STATE_FILE}.safetensors.tmp"
        save_file(tensors, str(tmp))
        tmp.replace(self.out / f"{STATE_FILE}.safetensors")
        meta = {
            "step": self.step,
            "elapsed": self.elapsed,
            "model": model.config.to_json(),
            "optimizer": opt_meta,
            "numpy_rng": self.rng.bit_generator.state,
            "history": self.history,
            "best": self.best,
            "train": asdict(self.cfg),
        }
        tmpj = self.out / f".{STATE_FILE}.json.tmp"
        tmpj.write_text(json.dumps(meta, default=_json_default))
        tmpj.replace(self.out / f"{STATE_FILE}.json")

    def _published(self, model: CompactVLA):
        """The weights a checkpoint carries: the average when ``ema`` is on, else the raw ones."""
        return self.ema.swapped_in(model) if self.ema is not None else contextlib.nullcontext()

    def _trained_meta(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "stores": list(self.cfg.stores),
            "episodes": len(self.data.episodes),
            "samples": len(self.data),
            "instructions": self.data.instructions,
            "fps": self.data.fps,
        }

    # -- training --------------------------------------------------------------------------------

    def budget(self) -> Budget:
        return Budget(self.cfg.steps, self.cfg.seconds, self.cfg.warmup)

    def _lr(self, budget: Budget, elapsed: float) -> float:
        frac = budget.fraction(self.step, elapsed)
        return self.cfg.lr * warmup_cosine(
            self.step, frac, warmup=budget.warmup, floor=self.cfg.lr_floor
        )

    def _tensors(self, raw: dict) -> dict[str, Any]:
        m = self._unwrapped()
        mc = m.config
        dev = self.accel.device
        images = {
            c: random_shift(images_to_tensor(v, mc.image_size), self.cfg.augment_pad).to(dev)
            for c, v in raw["images"].items()
        }
        raw_state = torch.from_numpy(raw["state"]).to(dev)
        state = m.normalise_state(raw_state)
        actions = m.normalise_action(torch.from_numpy(raw["actions"]).to(dev), raw_state)
        B = state.shape[0]
        prefix_len = torch.zeros(B, dtype=torch.long)
        use = torch.rand(B) < self.cfg.prefix_prob
        if mc.max_prefix > 0:
            prefix_len[use] = torch.randint(1, mc.max_prefix + 1, (int(use.sum()),))
        mask = torch.from_numpy(raw["action_mask"]) & (
            torch.arange(mc.horizon)[None, :] >= prefix_len[:, None]
        )
        return {
            "images": images,
            "text": self.text.encode(raw["instructions"]).to(dev),
            "state": state,
            "actions": actions,
            "action_mask": mask.to(dev),
            "prefix_len": prefix_len.to(dev),
        }

    def _timed_step(self):
        return self.governor.step() if self.governor is not None else contextlib.nullcontext()

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        budget = self.budget()
        agreed = AgreedBudget(budget, self.procs)
        bar = None
        if cfg.progress and self.accel.is_main_process:
            bar = BudgetBar(budget, "train policy", self.step, self.elapsed)
        start = self.clock() - self.elapsed
        losses: list[float] = []
        self.model.train()
        while True:
            # the main process's clock decides for everyone (policy.distributed)
            decision = agreed.check(self.step, self.clock() - start)
            stop_reason = decision.stop
            if stop_reason:
                break
            lr = self._lr(budget, decision.elapsed)
            for group in self.opt.param_groups:
                group["lr"] = lr
            with self._timed_step():
                rows = self.sampler.sample(self.rng, cfg.batch_size)
                batch = self._tensors(self.data.batch(rows))
                loss = self.model(batch)  # forward() is the loss: DDP syncs gradients through it
                self.opt.zero_grad(set_to_none=True)
                self.accel.backward(loss)
                self.accel.clip_grad_norm_(self.model.parameters(), 1.0)
                self.opt.step()
            self.step += 1
            if self.ema is not None:
                self.ema.update(self._unwrapped(), min(cfg.ema, (1 + self.step) / (10 + self.step)))
            losses.append(float(loss.detach()))
            self.last_lr = lr
            if bar is not None:
                bar.update(self.step, self.clock() - start, loss=f"{losses[-1]:.4f}")
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                self.elapsed = self.clock() - start
                self.history.append(
                    {
                        "step": self.step,
                        "seconds": round(self.elapsed, 2),
                        "loss": float(np.mean(losses)),
                        "lr": lr,
                        "threads": torch.get_num_threads(),
                    }
                )
                losses.clear()
            if cfg.eval_every and self.step % cfg.eval_every == 0:
                paused = self.clock()
                self._evaluate(start)
                start += self.clock() - paused  # evaluating is not training time
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.elapsed = self.clock() - start
                self.save()
        if bar is not None:
            bar.close()
        if self.governor is not None:  # what follows in this process (evaluation) gets the
            torch.set_num_threads(default_threads())  # fixed count, as before training
        if losses:
            self.elapsed = self.clock() - start
            self.history.append(
                {
                    "step": self.step,
                    "seconds": round(self.elapsed, 2),
                    "loss": float(np.mean(losses)),
                }
            )
        self.elapsed = self.clock() - start
        self.save()
        if cfg.eval_every and self.evaluate is not None and not self._evaluated_at(self.step):
            self._evaluate(start)
            self.save()
        self.plot()
        self.procs.barrier()  # the final checkpoint is on disk when any process returns
        return {
            "steps": self.step,
            "seconds": round(self.elapsed, 2),
            "stopped_by": stop_reason,
            "threads": self.governor.summary() if self.governor else torch.get_num_threads(),
            "final_loss": next((h["loss"] for h in reversed(self.history) if "loss" in h), None),
            "checkpoint": str(self.out / "checkpoint"),
        }

    def _evaluated_at(self, step: int) -> bool:
        return any(h.get("step") == step and "success_rate" in h for h in self.history)

    def _evaluate(self, start: float) -> None:
        if self.evaluate is None or not self.accel.is_main_process:
            return
        self.model.eval()
        self.save()
        t0 = self.clock()
        result = self.evaluate(self.out / "checkpoint")
        entry = {"step": self.step, "seconds": round(self.clock() - start, 2), **result}
        self.history.append(entry)
        rate = float(result.get("success_rate", -1))
        if self.cfg.progress:
            from tqdm import tqdm

            tqdm.write(
                f"step {self.step}: success {rate:.2f} ({self.clock() - t0:.0f} s eval)",
                file=sys.stderr,
            )
        if rate > self.best:
            self.best = rate
            model = self._unwrapped()
            with self._published(model):
                save_checkpoint(model, self.out / "best", {**self._trained_meta(), **result})
        self.model.train()

    def plot(self) -> Path | None:
        if not self.accel.is_main_process or not self.history:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
        pts = [h for h in self.history if "loss" in h]
        ax[0].plot([h["step"] for h in pts], [h["loss"] for h in pts])
        ax[0].set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
        ev = [h for h in self.history if "success_rate" in h]
        if ev:
            ax[1].plot([h["step"] for h in ev], [h["success_rate"] for h in ev], "o-")
            lo = [h.get("ci_low", h["success_rate"]) for h in ev]
            hi = [h.get("ci_high", h["success_rate"]) for h in ev]
            ax[1].fill_between([h["step"] for h in ev], lo, hi, alpha=0.2)
        else:
            ax[1].text(
                0.5,
                0.5,
                "no evaluation in this run\n(train.eval_every=0)",
                ha="center",
                va="center",
                transform=ax[1].transAxes,
                color="grey",
            )
        ax[1].set(
            xlabel="step", ylabel="success rate in the twin", ylim=(-0.02, 1.02), title="evaluation"
        )
        fig.tight_layout()
        path = self.out / "training.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
