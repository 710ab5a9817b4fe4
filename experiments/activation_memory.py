"""Activation memory: training vs inference against depth and sequence length, and the
memory-recompute trade-off of gradient checkpointing.

Reverse mode keeps what the backward pass needs from the forward pass (activations,
residuals), so the memory of a training step grows with depth (MLP) and sequence length
(GRU through diffsim.rollout) while inference reuses its buffers. The figures are XLA's
compiled memory analysis (`diffsim.memory_usage`, working memory beyond inputs and
outputs). Gradient checkpointing (`diffsim.Checkpointed(segments=s)`) stores s states
and recomputes segments on the way back: the experiment plots its memory against the
gradient's wall time for several s, beside plain BPTT.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

import diffsim

from ._autodiff_common import median_time


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = False
    mlp_width: int = dataclasses.field(default=256, metadata={"min": 1})
    mlp_batch: int = dataclasses.field(default=64, metadata={"min": 1})
    depths: list[int] = dataclasses.field(default_factory=lambda: [2, 4, 8, 16, 32, 64])
    rnn_hidden: int = dataclasses.field(default=64, metadata={"min": 1})
    rnn_inputs: int = dataclasses.field(default=8, metadata={"min": 1})
    lengths: list[int] = dataclasses.field(default_factory=lambda: [10, 30, 100, 300, 1000, 3000])
    checkpoint_length: int = dataclasses.field(default=2000, metadata={"min": 4})
    segments: list[int] = dataclasses.field(
        default_factory=lambda: [2, 5, 10, 20, 45, 100, 200, 500]
    )
    repeats: int = dataclasses.field(default=5, metadata={"min": 1})


def mlp_memory(cfg: Config, depth, key):
    mlp = eqx.nn.MLP(cfg.mlp_width, cfg.mlp_width, cfg.mlp_width, depth - 1, key=key)
    params, static = eqx.partition(mlp, eqx.is_inexact_array)
    x = jnp.ones((cfg.mlp_batch, cfg.mlp_width), jnp.float32)
    loss = lambda p, x: jnp.mean(jax.vmap(eqx.combine(p, static))(x) ** 2)
    infer = diffsim.memory_usage(loss, params, x).temp
    train = diffsim.memory_usage(jax.value_and_grad(loss), params, x).temp
    return infer, train


def gru_loss_fn(cfg: Config, key, grad=diffsim.BPTT()):
    cell = eqx.nn.GRUCell(cfg.rnn_inputs, cfg.rnn_hidden, key=key)
    params, static = eqx.partition(cell, eqx.is_inexact_array)

    def loss(p, xs):
        c = eqx.combine(p, static)
        h, _ = diffsim.rollout(
            lambda h, x: (c(x, h), None), jnp.zeros(cfg.rnn_hidden), xs, grad=grad
        )
        return jnp.sum(h**2)

    return loss, params


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    key = jax.random.key(cfg.seed)
    metrics: dict = {}
    mlp = {
        d: mlp_memory(cfg, d, key)
        for d in tqdm(cfg.depths, desc="MLP depths", leave=False, disable=run.quiet)
    }
    for d, (i, t) in mlp.items():
        metrics[f"mlp.{d}.inference_kb"] = i / 1e3
        metrics[f"mlp.{d}.training_kb"] = t / 1e3
    ds = np.array(cfg.depths)
    slope = np.polyfit(ds, [mlp[d][1] for d in cfg.depths], 1)[0]
    act_bytes = cfg.mlp_batch * cfg.mlp_width * 4
    metrics["mlp.training_bytes_per_layer"] = float(slope)
    metrics["mlp.training_per_layer_over_activation"] = float(slope / act_bytes)
    run.log(
        f"MLP: training memory grows {slope / 1e3:.1f} KB per layer "
        f"({slope / act_bytes:.2f} activations of {act_bytes / 1e3:.1f} KB); inference "
        f"{mlp[cfg.depths[0]][0] / 1e3:.1f} -> {mlp[cfg.depths[-1]][0] / 1e3:.1f} KB"
    )

    loss, params = gru_loss_fn(cfg, key)
    rnn = {}
    for T in tqdm(cfg.lengths, desc="GRU lengths", leave=False, disable=run.quiet):
        xs = jnp.ones((T, cfg.rnn_inputs), jnp.float32)
        rnn[T] = (
            diffsim.memory_usage(loss, params, xs).temp,
            diffsim.memory_usage(jax.value_and_grad(loss), params, xs).temp,
        )
        metrics[f"gru.{T}.inference_kb"] = rnn[T][0] / 1e3
        metrics[f"gru.{T}.training_kb"] = rnn[T][1] / 1e3
    slope_t = np.polyfit(np.array(cfg.lengths), [rnn[T][1] for T in cfg.lengths], 1)[0]
    metrics["gru.training_bytes_per_step"] = float(slope_t)
    run.log(
        f"GRU: training memory grows {slope_t:.0f} bytes per step "
        f"({slope_t / (cfg.rnn_hidden * 4):.1f} hidden states); inference "
        f"{rnn[cfg.lengths[0]][0] / 1e3:.1f} -> {rnn[cfg.lengths[-1]][0] / 1e3:.1f} KB"
    )

    # Checkpointing: memory against the gradient's wall time.
    T = cfg.checkpoint_length
    xs = jax.random.normal(jax.random.fold_in(key, 1), (T, cfg.rnn_inputs), jnp.float32)
    strategies = {"BPTT": diffsim.BPTT()} | {
        f"segments={s}": diffsim.Checkpointed(segments=s) for s in cfg.segments if s < T
    }
    trade = {}
    reference = None
    for name, grad in tqdm(
        strategies.items(), desc="checkpointing", leave=False, disable=run.quiet
    ):
        loss_c, params_c = gru_loss_fn(cfg, key, grad)
        g = jax.jit(jax.grad(loss_c))
        out = g(params_c, xs)
        if reference is None:
            reference = out
        err = max(
            float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30))
            for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(reference))
        )
        mem = diffsim.memory_usage(jax.grad(loss_c), params_c, xs).temp
        seconds = median_time(g, params_c, xs, repeats=cfg.repeats)
        trade[name] = (mem, seconds)
        metrics[f"checkpoint.{name}.memory_kb"] = mem / 1e3
        metrics[f"checkpoint.{name}.grad_ms"] = seconds * 1e3
        metrics[f"checkpoint.{name}.rel_diff_vs_bptt"] = err
        run.log(
            f"T = {T}, {name}: gradient memory {mem / 1e3:.1f} KB, {seconds * 1e3:.2f} ms, "
            f"rel diff {err:.2g}"
        )
    best = min((k for k in trade if k != "BPTT"), key=lambda k: trade[k][0])
    metrics["checkpoint.best"] = best
    metrics["checkpoint.bptt_over_best_memory"] = trade["BPTT"][0] / trade[best][0]

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
    axes[0].plot(ds, [mlp[d][1] / 1e3 for d in cfg.depths], "o-", label="training (value and grad)")
    axes[0].plot(ds, [mlp[d][0] / 1e3 for d in cfg.depths], "s-", label="inference (value)")
    axes[0].set_xlabel("MLP depth (layers)")
    axes[0].set_ylabel("compiled working memory (KB)")
    axes[0].set_title(f"MLP width {cfg.mlp_width}, batch {cfg.mlp_batch}")
    axes[0].legend()
    Ls = np.array(cfg.lengths)
    axes[1].loglog(
        Ls, [rnn[t][1] / 1e3 for t in cfg.lengths], "o-", label="training (value and grad)"
    )
    axes[1].loglog(Ls, [rnn[t][0] / 1e3 for t in cfg.lengths], "s-", label="inference (value)")
    axes[1].set_xlabel("sequence length (steps)")
    axes[1].set_ylabel("compiled working memory (KB)")
    axes[1].set_title(f"GRU hidden {cfg.rnn_hidden}")
    axes[1].legend()
    for name, (mem, sec) in trade.items():
        axes[2].scatter(sec * 1e3, mem / 1e3, marker="*" if name == "BPTT" else "o", s=60)
        axes[2].annotate(name, (sec * 1e3, mem / 1e3), fontsize=7)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("gradient wall time (ms)")
    axes[2].set_ylabel("gradient working memory (KB)")
    axes[2].set_title(f"checkpointing a GRU over T = {T}")
    run.save_figure(fig, "activation_memory.png")
    return metrics
