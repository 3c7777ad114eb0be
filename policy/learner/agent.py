"""The learner's networks and updates: a chunk-level Q ensemble and an actor on frozen features.

**Critic** (Q-chunking over what the driver executed; the ensemble and LayerNorm of
HIL-SERL/RLPD): ``Q(features, chunk)`` where ``chunk`` is the ``h`` executed steps relative to
the joint state at the chunk's start, divided by a per-joint action scale, with the step mask;
``ensemble`` MLPs with LayerNorm. Target: ``r + gamma^k (1 - done) min_e Q'(s', pi(s'))``
over the whole chunk (QC-FQL's target), soft-updated target networks (``tau``).

**Actors** (``learner.actor``, compared in ``bench/practice.py``):

``residual``  a tanh-Gaussian over a residual on the frozen base's chunk, bounded by
              ``residual_scale`` per joint and step (Policy Decorator's bounded residual, on
              ConRFT's frozen features): ``a = base + scale * tanh(u)`` on the chunk's first
              ``h`` steps, the last residual carried over the rest. Loss: SAC's
              ``alpha log pi - min Q`` (normalised by the batch's mean |Q|, as TD3+BC does, so
              the imitation weight means the same whatever the reward scale), plus ConRFT's
              BC term on prior chunks (``bc_weight`` decaying to ``bc_weight_final``),
              interventions weighted ``intervention_weight``. Temperature auto-tuned from
              ``init_temperature`` (HIL-SERL: 1e-2).
``awac``      the same bounded residual, trained without a Q gradient (AWAC, Nair et al.
              2020, made for fine-tuning from prior data): the actor's log-likelihood of
              the chunk that was actually executed, on rows of both buffers, weighted by
              ``exp(A / beta)`` with ``A = min Q(s, a_executed) - min Q(s, pi(s))`` in units of
              the batch's spread (capped at ``awac_max_weight``), times the imitation weight
              (interventions ``intervention_weight``); demonstrations only with
              ``awac_demos`` (the base was trained on them). It can only move towards chunks the
              robot or the person ran, so an inaccurate Q reorders what was tried instead of
              steering into untried motion; the stalls a person fixes pull it hardest.
``rerank``    no actor network (PA-RL's selection without the distillation): ``proposals``
              chunks around the base chunk (the base itself and Gaussian residuals of scale
              ``residual_scale / 2``), executed by argmax of the ensemble's minimum Q; during
              practice sampled by a softmax over Q. The critic's target uses the same selection.

``distil``    not here: :mod:`policy.learner.distil` fine-tunes the compact VLA itself on the
              demonstrations, the person's chunks and the policy's own successful ones
              (success-filtered, or critic-filtered on failures), with no Q at all.

Two critic updates per actor update (``actor_every``, HIL-SERL), ``utd`` critic updates per new
transition (DSRL and RLPD use high ratios; this is what the benchmark trades against wall time).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from policy.learner.config import ActorKind, LearnerConfig
from policy.learner.replay import Transitions
from robot.schema import ControlSource


def _mlp(n_in: int, hidden: int, n_out: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(2):
        layers.append(nn.Linear(n_in if i == 0 else hidden, hidden))
        if norm:
            layers.append(nn.LayerNorm(hidden))
        layers.append(nn.ReLU())
    layers.append(nn.Linear(hidden, n_out))
    return nn.Sequential(*layers)


class QEnsemble(nn.Module):
    def __init__(self, n_in: int, hidden: int, n: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(_mlp(n_in, hidden, 1, norm=True) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(E, B)`` values."""
        return torch.stack([m(x).squeeze(-1) for m in self.members])


class ResidualActor(nn.Module):
    """A tanh-Gaussian over ``(h, D)`` residuals, from features and the base chunk."""

    LOG_STD = (-5.0, 1.0)

    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.net = _mlp(n_in, hidden, 2 * n_out, norm=True)
        nn.init.zeros_(self.net[-1].weight)  # starts at the base policy: residual 0
        nn.init.constant_(self.net[-1].bias, 0.0)
        with torch.no_grad():
            self.net[-1].bias[n_out:] = -1.5

    def forward(self, x: torch.Tensor, deterministic: bool = False, max_std: float | None = None):
        mean, log_std = self.net(x).chunk(2, dim=-1)
        high = self.LOG_STD[1] if max_std is None else min(self.LOG_STD[1], math.log(max_std))
        log_std = log_std.clamp(self.LOG_STD[0], high)
        if deterministic:
            return torch.tanh(mean), torch.zeros(x.shape[0])
        std = log_std.exp()
        u = mean + std * torch.randn_like(mean)
        log_prob = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        y = torch.tanh(u)
        log_prob = log_prob - torch.log1p(-y.pow(2) + 1e-6).sum(-1)
        return y, log_prob


class ChunkLearner(nn.Module):
    """The Q ensemble, its target, the actor and the temperature, with their updates."""

    def __init__(
        self,
        config: LearnerConfig,
        feature_dim: int,
        horizon: int,
        dof: int,
        action_scale: np.ndarray,
        state_dict: dict | None = None,
    ) -> None:
        super().__init__()
        config.check_policy(horizon)
        self.config, self.feature_dim, self.horizon, self.dof = config, feature_dim, horizon, dof
        h = config.chunk_steps
        self.register_buffer("action_scale", torch.as_tensor(action_scale, dtype=torch.float32))
        q_in = feature_dim + h * dof + h
        self.q = QEnsemble(q_in, config.hidden, config.ensemble)
        self.q_target = QEnsemble(q_in, config.hidden, config.ensemble)
        self.q_target.load_state_dict(self.q.state_dict())
        for p in self.q_target.parameters():
            p.requires_grad_(False)
        self.actor = ResidualActor(feature_dim + horizon * dof, config.hidden, h * dof)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(config.init_temperature)))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        if state_dict is not None:
            self.load_state_dict(state_dict)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=config.lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.lr)
        self.target_entropy = -0.5 * h * dof
        self.gen = torch.Generator().manual_seed(config.seed)

    # -- inputs ------------------------------------------------------------------------------

    def _relative(self, chunk: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return (chunk - q[:, None]) / self.action_scale

    def q_input(self, feat, q, chunk_h, mask) -> torch.Tensor:
        rel = self._relative(chunk_h, q).flatten(1)
        return torch.cat([feat, rel * mask.repeat_interleave(self.dof, 1), mask], -1)

    def actor_input(self, feat, q, base) -> torch.Tensor:
        return torch.cat([feat, self._relative(base, q).flatten(1)], -1)

    def residual_chunk(self, base: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, H, D)``: the base chunk plus the bounded residual ``y`` in [-1, 1]^(h*D)."""
        h, D = self.config.chunk_steps, self.dof
        res = self.config.residual_scale * y.view(-1, h, D)
        tail = res[:, -1:].expand(-1, self.horizon - h, -1)
        return base + torch.cat([res, tail], dim=1)

    # -- acting ------------------------------------------------------------------------------

    def _full_mask(self, n: int) -> torch.Tensor:
        return torch.ones(n, self.config.chunk_steps)

    def select(self, feat, q, base, *, explore: bool) -> torch.Tensor:
        """``(B, H, D)`` chunks to execute (no gradient)."""
        with torch.no_grad():
            if self.config.actor != ActorKind.rerank:
                y, _ = self.actor(
                    self.actor_input(feat, q, base),
                    deterministic=not explore,
                    max_std=self.config.explore_std,
                )
                return self.residual_chunk(base, y)
            return self._rerank(feat, q, base, explore=explore)

    def _rerank(self, feat, q, base, *, explore: bool) -> torch.Tensor:
        B, N, h = feat.shape[0], self.config.proposals, self.config.chunk_steps
        # a smooth proposal: one offset per joint held over the chunk (a jittery chunk is
        # never what a robot should run), drawn from N(0, 0.5^2) in units of residual_scale
        offsets = torch.randn(B, N, 1, self.dof, generator=self.gen).clamp(-2, 2) * 0.5
        y = offsets.expand(B, N, h, self.dof).reshape(B, N, h * self.dof).clone()
        y[:, 0] = 0.0
        cand = self.residual_chunk(base.repeat_interleave(N, 0), y.view(B * N, -1).clamp(-1, 1))
        x = self.q_input(
            feat.repeat_interleave(N, 0),
            q.repeat_interleave(N, 0),
            cand[:, :h],
            self._full_mask(B * N),
        )
        values = self.q(x).min(0).values.view(B, N)
        if explore:
            probs = torch.softmax(values / max(float(values.std()), 1e-3), dim=1)
            pick = torch.multinomial(probs, 1, generator=self.gen).squeeze(1)
        else:
            pick = values.argmax(1)
        return cand.view(B, N, self.horizon, self.dof)[torch.arange(B), pick]

    # -- updates -----------------------------------------------------------------------------

    @staticmethod
    def tensors(batch: Transitions) -> dict[str, torch.Tensor]:
        return {
            f: torch.as_tensor(np.asarray(getattr(batch, f)), dtype=torch.float32)
            for f in Transitions.FIELDS
        }

    def critic_update(self, b: dict[str, torch.Tensor]) -> float:
        h = self.config.chunk_steps
        with torch.no_grad():
            if self.config.actor != ActorKind.rerank:
                y, _ = self.actor(self.actor_input(b["next_feat"], b["next_q"], b["next_base"]))
                nxt = self.residual_chunk(b["next_base"], y)
            else:
                nxt = self._rerank(b["next_feat"], b["next_q"], b["next_base"], explore=False)
            x_next = self.q_input(
                b["next_feat"], b["next_q"], nxt[:, :h], self._full_mask(len(nxt))
            )
            target = b["reward"] + b["discount"] * self.q_target(x_next).min(0).values
        values = self.q(self.q_input(b["feat"], b["q"], b["actions"], b["mask"]))
        loss = ((values - target[None]) ** 2).mean()
        self.q_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.q_opt.step()
        with torch.no_grad():
            for p, t in zip(self.q.parameters(), self.q_target.parameters(), strict=True):
                t.lerp_(p, self.config.tau)
        self.updates += 1
        return loss.item()

    def bc_weight(self) -> float:
        c = self.config
        frac = min(1.0, float(self.updates) / max(c.bc_decay_updates, 1))
        return c.bc_weight + (c.bc_weight_final - c.bc_weight) * frac

    def actor_update(self, b: dict[str, torch.Tensor], is_prior: torch.Tensor) -> dict[str, float]:
        if self.config.actor == ActorKind.awac:
            return self._awac_update(b)
        if self.config.actor != ActorKind.residual:
            return {}
        h = self.config.chunk_steps
        y, log_prob = self.actor(self.actor_input(b["feat"], b["q"], b["base"]))
        chunk = self.residual_chunk(b["base"], y)
        values = self.q(self.q_input(b["feat"], b["q"], chunk[:, :h], self._full_mask(len(y))))
        q_min = values.min(0).values
        alpha = self.log_alpha.exp().detach()
        lam = 1.0 / q_min.abs().mean().detach().clamp_min(1e-3)
        rl = (alpha * log_prob - lam * q_min).mean()
        w = b["weight"] * is_prior
        err = (self._relative(chunk[:, :h], b["q"]) - self._relative(b["actions"], b["q"])) ** 2
        err = (err.mean(-1) * b["mask"]).sum(-1) / b["mask"].sum(-1).clamp_min(1.0)
        bc = (w * err).sum() / w.sum().clamp_min(1.0)
        loss = rl + self.bc_weight() * bc
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        return {"actor_loss": loss.item(), "bc": bc.item(), "alpha": alpha.item()}

    def _awac_update(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        """Advantage-weighted regression of the residual onto executed chunks (see above)."""
        c, h = self.config, self.config.chunk_steps
        x = self.actor_input(b["feat"], b["q"], b["base"])
        with torch.no_grad():
            y_pi, _ = self.actor(x, deterministic=True)
            pi_chunk = self.residual_chunk(b["base"], y_pi)[:, :h]
            full = self._full_mask(len(y_pi))
            q_pi = self.q(self.q_input(b["feat"], b["q"], pi_chunk, full)).min(0).values
            q_data = self.q(self.q_input(b["feat"], b["q"], b["actions"], b["mask"])).min(0).values
            adv = q_data - q_pi
            adv = adv / adv.std().clamp_min(1e-6)
            w = (adv / c.awac_beta).clamp(max=math.log(c.awac_max_weight)).exp() * b["weight"]
            if not c.awac_demos:  # the base already imitates them; refitting them overfits
                w = w * (b["source"] != int(ControlSource.SCRIPT)).float()
            w = w / w.mean().clamp_min(1e-6)
            # the executed chunk as the residual that would have produced it, just inside tanh
            target = (b["actions"] - b["base"][:, :h]) / c.residual_scale
            u_target = torch.atanh(target.clamp(-0.995, 0.995)).flatten(1)
        mean, log_std = self.actor.net(x).chunk(2, dim=-1)
        log_std = log_std.clamp(*ResidualActor.LOG_STD)
        nll = 0.5 * ((u_target - mean) / log_std.exp()) ** 2 + log_std
        step_mask = b["mask"].repeat_interleave(self.dof, 1)
        nll = (nll * step_mask).sum(-1) / step_mask.sum(-1).clamp_min(1.0)
        loss = (w * nll).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        return {"actor_loss": loss.item(), "weight_max": float(w.max())}
