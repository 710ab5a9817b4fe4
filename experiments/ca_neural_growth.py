"""A growing neural cellular automaton learns to grow a drawn image from one cell and regrow it.

The Growing NCA of Mordvintsev et al. (Distill 2020): 16 channels per cell, perception
by fixed Sobel filters and the identity, a per-cell MLP update whose last layer starts at
zero, stochastic cell updates, alive masking, a sample pool, and damage during training.
The target (a heart or a text) is drawn with matplotlib, so nothing is downloaded. The
rollout is `diffsim.rollout` with a selectable gradient strategy. Training runs in
`diffsim.fit` with the sample pool as its threaded (untrained) state, so it is
checkpointed and `--resume` continues it. Outputs: the loss curve, a filmstrip of
growth from one seed cell and of regrowth after damage, and the losses of each.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

import diffsim
from diffsim.automata import (
    GrowingNCA,
    damage,
    draw_target,
    nca_rollout,
    rgba_loss,
    seed_state,
    to_rgb,
)

matplotlib.use("Agg")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    target: str = dataclasses.field(default="heart", metadata={"help": "'heart' or 'text:XYZ'"})
    size: int = dataclasses.field(
        default=20, metadata={"min": 8, "max": 256, "help": "target image side"}
    )
    pad: int = dataclasses.field(default=6, metadata={"min": 0, "max": 64})
    channels: int = dataclasses.field(default=16, metadata={"min": 4, "max": 64})
    hidden: int = dataclasses.field(default=64, metadata={"min": 1, "max": 1024})
    fire_rate: float = dataclasses.field(default=0.5, metadata={"min_exclusive": 0, "max": 1})
    batch: int = dataclasses.field(default=4, metadata={"min": 2, "max": 256})
    pool: int = dataclasses.field(default=64, metadata={"min": 2, "max": 4096})
    rollout_steps: int = dataclasses.field(default=40, metadata={"min": 1, "max": 1000})
    train_steps: int = dataclasses.field(default=600, metadata={"min": 1, "max": 100_000})
    lr: float = dataclasses.field(default=2e-3, metadata={"min_exclusive": 0})
    damaged: int = dataclasses.field(
        default=1, metadata={"min": 0, "max": 64, "help": "pool samples damaged per batch"}
    )
    damage_radius: float = dataclasses.field(default=0.2, metadata={"min": 0, "max": 1})
    grad: Literal["bptt", "checkpointed"] = "bptt"
    log_every: int = dataclasses.field(default=20, metadata={"min": 1})

    def __post_init__(self):
        if self.batch > self.pool:
            raise ValueError(f"key 'batch' ({self.batch}) must be <= 'pool' ({self.pool})")
        if self.damaged >= self.batch:
            raise ValueError(f"key 'damaged' ({self.damaged}) must be < 'batch' ({self.batch})")


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    target = jnp.asarray(draw_target(cfg.size, cfg.target, pad=cfg.pad))
    side = target.shape[0]
    key = jax.random.key(cfg.seed)
    nca = GrowingNCA(cfg.channels, cfg.hidden, cfg.fire_rate, key=jax.random.fold_in(key, 0))
    grad = diffsim.Checkpointed() if cfg.grad == "checkpointed" else diffsim.BPTT()
    seed = seed_state(side, side, cfg.channels)
    schedule = optax.piecewise_constant_schedule(cfg.lr, {cfg.train_steps // 2: 0.3})
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
    pool = jnp.broadcast_to(seed, (cfg.pool, *seed.shape))

    def loss_fn(nca, batch, key, pool):
        k1, k2, k3 = jax.random.split(key, 3)
        idx = jax.random.choice(k1, cfg.pool, (cfg.batch,), replace=False)
        x = pool[idx]
        # Worst sample is reseeded; the best ones are damaged (pool training + damage).
        order = jnp.argsort(-jnp.mean((x[..., :4] - target[None]) ** 2, axis=(1, 2, 3)))
        x, idx = x[order], idx[order]
        x = x.at[0].set(seed)
        if cfg.damaged:
            x = x.at[-cfg.damaged :].set(
                damage(x[-cfg.damaged :], key=k2, radius=cfg.damage_radius)
            )
        final, _ = nca_rollout(nca, x, cfg.rollout_steps, key=k3, grad=grad)
        return rgba_loss(final, target), ({}, pool.at[idx].set(final))

    def report(record):  # progress lines in log.txt; never stops early
        if record["step"] % cfg.log_every == 0 or record["step"] == cfg.train_steps:
            run.log(f"step {record['step']}: loss {record['loss']:.5f}")
        return False

    result = diffsim.fit(
        loss_fn,
        nca,
        opt,
        steps=cfg.train_steps,
        key=jax.random.fold_in(key, 1000),
        state=pool,
        log_every=1,
        checkpoint_every=max(1, cfg.train_steps // 10),
        directory=run.dir / "train",
        resume=run.resume,
        progress=not run.quiet,
        stop_fn=report,
    )
    nca = result.params
    history = [rec["loss"] for rec in result.history]
    diffsim.save_checkpoint(run.dir / "nca.eqx", nca, {"step": cfg.train_steps})
    (run.dir / "loss.json").write_text(json.dumps(history))

    # Growth from one cell for twice the training horizon; damage at the horizon T
    # (the state training asks for), then regrowth for another T steps.
    T, every = cfg.rollout_steps, max(1, cfg.rollout_steps // 5)
    T = (T // every) * every
    grown, growth = nca_rollout(nca, seed, 2 * T, key=jax.random.fold_in(key, 1), every=every)
    at_T = growth[T // every - 1]
    damaged = damage(at_T, key=jax.random.fold_in(key, 2), radius=cfg.damage_radius)
    regrown, regrowth = nca_rollout(nca, damaged, T, key=jax.random.fold_in(key, 3), every=every)
    metrics = {
        "seed_loss": float(rgba_loss(seed, target)),
        "final_train_loss": float(np.mean(history[-10:])),
        "growth_loss_at_T": float(rgba_loss(at_T, target)),
        "growth_loss_at_2T": float(rgba_loss(grown, target)),
        "damaged_loss": float(rgba_loss(damaged, target)),
        "regrowth_loss": float(rgba_loss(regrown, target)),
    }

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.semilogy(np.arange(1, len(history) + 1), history)
    ax.set_xlabel("training step")
    ax.set_ylabel("pool batch loss (RGBA MSE)")
    run.save_figure(fig, "loss.png")

    strips = [("growth", [seed, *growth]), ("regrowth", [damaged, *regrowth])]
    n = max(len(s) for _, s in strips)
    fig, axes = plt.subplots(3, n, figsize=(1.1 * n, 3.6), squeeze=False)
    for r, (name, frames) in enumerate(strips):
        for c in range(n):
            ax = axes[r, c]
            if c < len(frames):
                ax.imshow(np.asarray(to_rgb(frames[c])))
                ax.set_title(f"{name} {c * every}", fontsize=6)
            ax.axis("off")
    axes[2, 0].imshow(np.asarray(to_rgb(target)))
    axes[2, 0].set_title("target", fontsize=6)
    for c in range(1, n):
        axes[2, c].axis("off")
    axes[2, 0].axis("off")
    run.save_figure(fig, "filmstrip.png")
    run.log(", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return metrics
