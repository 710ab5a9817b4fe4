"""Tied weights: the shared matrix's gradient is the sum of its encoder and decoder roles.

A tied autoencoder x_hat = W^T tanh(W x + b) + c uses one matrix twice. Reverse mode
sums the gradients arriving along both paths, so dL/dW equals dL/dW_enc + (dL/dW_dec)^T of
the untied model evaluated at W_enc = W, W_dec = W^T. The experiment trains a tied
autoencoder on the scikit-learn digits and checks the identity, exactly, at the start and
the end of training, in JAX and in diffsim.autodiff's tape.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

import diffsim
import diffsim.autodiff as ad

from ._autodiff_common import digits


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    hidden: int = dataclasses.field(default=16, metadata={"min": 1, "max": 64})
    batch: int = dataclasses.field(default=128, metadata={"min": 1})
    train_steps: int = dataclasses.field(default=500, metadata={"min": 0})
    lr: float = dataclasses.field(default=1e-2, metadata={"min_exclusive": 0})


def tied_loss(p, x):
    h = jnp.tanh(x @ p["W"].T + p["b"][None])
    return jnp.mean(jnp.sum((h @ p["W"] + p["c"][None] - x) ** 2, axis=-1))


def untied_loss(W_enc, W_dec, p, x):
    h = jnp.tanh(x @ W_enc.T + p["b"][None])
    return jnp.mean(jnp.sum((h @ W_dec.T + p["c"][None] - x) ** 2, axis=-1))


def tape_tied_loss(W, b, c, x):
    """The same loss on diffsim.autodiff's tape (one sample at a time, summed)."""
    total = 0.0
    for xi in x:
        h = ad.tanh(W @ xi + b)
        r = (h @ W) + c - xi
        total = total + ad.sum(r * r)
    return total * (1.0 / len(x))


def check(p, x):
    g_tied = jax.grad(tied_loss)(p, x)["W"]
    g_enc, g_dec = jax.grad(untied_loss, (0, 1))(p["W"], p["W"].T, p, x)
    total = g_enc + g_dec.T
    diff = float(jnp.max(jnp.abs(g_tied - total)))
    return g_tied, g_enc, g_dec.T, diff


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    images, _ = digits()
    data = images.reshape(len(images), -1)
    n = data.shape[1]
    key = jax.random.key(cfg.seed)
    p = {
        "W": jax.random.normal(key, (cfg.hidden, n)) / np.sqrt(n),
        "b": jnp.zeros(cfg.hidden),
        "c": jnp.zeros(n),
    }
    x0 = data[: cfg.batch]
    _, _, _, diff0 = check(p, x0)

    batch_fn = lambda k, step: data[jax.random.choice(k, len(data), (cfg.batch,))]
    result = diffsim.fit(
        lambda p, x, k: tied_loss(p, x),
        p,
        optax.adam(cfg.lr),
        steps=cfg.train_steps,
        key=jax.random.fold_in(key, 1),
        batch_fn=batch_fn,
        directory=run.dir / "train",
        resume=run.resume,
        log_every=10,
    )
    p = result.params
    g_tied, g_enc, g_dec, diff1 = check(p, x0)

    # The tape: the same tied gradient from a hand-written reverse pass, on 16 samples.
    xs = np.asarray(x0[:16])
    W, b, c = (np.asarray(p[k]) for k in ("W", "b", "c"))
    tape_gW = ad.grad(lambda W: tape_tied_loss(W, b, c, xs))(W)
    jax_gW = np.asarray(jax.grad(tied_loss)(p, jnp.asarray(xs))["W"])
    tape_rel = float(np.max(np.abs(tape_gW - jax_gW)) / np.max(np.abs(jax_gW)))

    enc_norm, dec_norm = float(jnp.linalg.norm(g_enc)), float(jnp.linalg.norm(g_dec))
    run.log(
        f"max |dL/dW - (encoder + decoder roles)|: {diff0:.3g} at init, {diff1:.3g} trained; "
        f"tape vs jax.grad {tape_rel:.2g}; role norms enc {enc_norm:.3g}, dec {dec_norm:.3g}"
    )

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    steps = [r["step"] for r in result.history]
    axes[0].semilogy(steps, [r["loss"] for r in result.history])
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("reconstruction loss (squared intensity)")
    axes[0].set_title("tied autoencoder on 8x8 digits")
    vmax = float(jnp.max(jnp.abs(g_tied)))
    for ax, g, title in zip(
        axes[1:], [g_enc, g_dec, g_tied], ["encoder role", "decoder role", "tied = sum"]
    ):
        im = ax.imshow(np.asarray(g), cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_title(f"dL/dW: {title}")
        ax.set_xlabel("input pixel index")
        ax.set_ylabel("hidden unit index")
    fig.colorbar(im, ax=axes[1:].tolist(), shrink=0.8, label="gradient (loss per weight unit)")
    run.save_figure(fig, "tied_gradients.png")
    return {
        "max_abs_diff_init": diff0,
        "max_abs_diff_trained": diff1,
        "tape_vs_jax_rel": tape_rel,
        "encoder_role_norm": enc_norm,
        "decoder_role_norm": dec_norm,
        "initial_loss": result.history[0]["loss"] if result.history else float("nan"),
        "final_loss": result.history[-1]["loss"] if result.history else float("nan"),
    }
