"""Transposed convolution is the adjoint of convolution; an upsampler built from it.

First the identity <conv(x), y> = <x, conv_T(y)> on random tensors (1-D and 2-D, strides
1-3, SAME and VALID), with conv_T built as the VJP of conv (`diffsim.autodiff.conv_transpose`)
and compared with `jax.lax.conv_transpose`. Then a small network restores the scikit-learn
8x8 digits from 4x4 (2x2 average pooling) with a stride-2 transposed convolution built as
a VJP; its test reconstruction error is compared with bilinear upsampling.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import diffsim
import diffsim.autodiff as ad

from ._autodiff_common import digits

DN = {1: ("NCH", "OIH", "NCH"), 2: ("NCHW", "OIHW", "NCHW")}


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = False
    channels: int = dataclasses.field(default=32, metadata={"min": 1})
    train_steps: int = dataclasses.field(default=1500, metadata={"min": 0})
    batch: int = dataclasses.field(default=64, metadata={"min": 1})
    lr: float = dataclasses.field(default=3e-3, metadata={"min_exclusive": 0})
    n_train: int = dataclasses.field(default=1500, metadata={"min": 1, "max": 1700})


class Upsampler(eqx.Module):
    """4x4 -> 8x8: conv 3x3, ReLU, transposed conv (stride 2, VJP-built), ReLU, conv 3x3,
    plus the bilinear upsampling as a skip connection."""

    inp: eqx.nn.Conv2d
    up: ad.ConvTranspose
    out: eqx.nn.Conv2d

    def __init__(self, channels, *, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.inp = eqx.nn.Conv2d(1, channels, 3, padding="SAME", key=k1)
        self.up = ad.ConvTranspose(channels, channels, 4, stride=2, key=k2)
        self.out = eqx.nn.Conv2d(channels, 1, 3, padding="SAME", key=k3)

    def __call__(self, low):  # (1, 4, 4) -> (1, 8, 8)
        h = jax.nn.relu(self.inp(low))
        h = jax.nn.relu(self.up(h))
        return self.out(h) + bilinear(low)


def downsample(images):  # (n, 8, 8) -> (n, 1, 4, 4), 2x2 average pooling
    return images.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4))[:, None]


def bilinear(low):  # (c, 4, 4) -> (c, 8, 8)
    return jax.image.resize(low, (low.shape[0], 8, 8), "bilinear")


def _identity_case(x, w, y, stride, padding):
    nd = w.ndim - 2
    n = x.shape[2:]
    cx = ad.conv(x, w, stride, padding)
    cty = ad.conv_transpose(y, w, stride, padding, input_size=n)
    lhs, rhs = jnp.vdot(cx, y), jnp.vdot(x, cty)
    ours = ad.conv_transpose(y, w, stride, padding)
    ref = jax.lax.conv_transpose(
        y, w, (stride,) * nd, padding, dimension_numbers=DN[nd], transpose_kernel=True
    )
    return jnp.abs(lhs - rhs) / jnp.abs(lhs), jnp.max(jnp.abs(ours - ref))


def identity_check(key):
    """Largest relative adjoint-identity gap and largest difference from lax, over the grid
    (1-D and 2-D, strides 1-3, SAME and VALID, kernel 3, sizes that stride 2 and 3 do not
    divide)."""
    gap, vs_lax = 0.0, 0.0
    case = jax.jit(_identity_case, static_argnums=(3, 4))
    for nd in (1, 2):
        for stride in (1, 2, 3):
            for padding in ("SAME", "VALID"):
                k1, k2, k3, key = jax.random.split(key, 4)
                n = 13 if nd == 1 else 7
                x = jax.random.normal(k1, (2, 3) + (n,) * nd)
                w = jax.random.normal(k2, (4, 3) + (3,) * nd)
                y = jax.random.normal(k3, ad.conv(x, w, stride, padding).shape)
                g, d = case(x, w, y, stride, padding)
                gap, vs_lax = max(gap, float(g)), max(vs_lax, float(d))
    return gap, vs_lax


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    key = jax.random.key(cfg.seed)
    with jax.enable_x64(True):
        gap, vs_lax = identity_check(jax.random.key(cfg.seed))
    run.log(
        f"adjoint identity: max relative gap {gap:.2g} (float64); max |ours - lax| {vs_lax:.2g}"
    )

    images, _ = digits(jnp.float32)
    high = images[:, None]  # (n, 1, 8, 8)
    low = downsample(images)
    tr, te = slice(0, cfg.n_train), slice(cfg.n_train, None)
    model = Upsampler(cfg.channels, key=key)

    def loss_fn(m, idx, k):
        pred = jax.vmap(m)(low[idx])
        return jnp.mean((pred - high[idx]) ** 2)

    result = diffsim.fit(
        loss_fn,
        model,
        optax.adam(cfg.lr),
        steps=cfg.train_steps,
        key=jax.random.fold_in(key, 1),
        batch_fn=lambda k, step: jax.random.choice(k, cfg.n_train, (cfg.batch,)),
        directory=run.dir / "train",
        resume=run.resume,
        log_every=25,
    )
    model = result.params
    pred = jax.vmap(model)(low[te])
    base = jax.vmap(bilinear)(low[te])
    mse_net = float(jnp.mean((pred - high[te]) ** 2))
    mse_bilinear = float(jnp.mean((base - high[te]) ** 2))
    run.log(
        f"test MSE (intensity^2): network {mse_net:.4g}, bilinear {mse_bilinear:.4g} "
        f"(ratio {mse_net / mse_bilinear:.3f})"
    )

    fig, axes = plt.subplots(4, 6, figsize=(9, 6.4))
    for j in range(6):
        for i, (img, title) in enumerate(
            [
                (low[te][j, 0], "4x4 input"),
                (base[j, 0], "bilinear"),
                (pred[j, 0], "network"),
                (high[te][j, 0], "8x8 truth"),
            ]
        ):
            axes[i, j].imshow(np.asarray(img), cmap="gray_r", vmin=0, vmax=1)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if j == 0:
                axes[i, j].set_ylabel(title)
    fig.suptitle(f"test MSE: network {mse_net:.4f}, bilinear {mse_bilinear:.4f}")
    run.save_figure(fig, "upsampling.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(
        [r["step"] for r in result.history],
        [r["loss"] for r in result.history],
        label="network (train)",
    )
    ax.axhline(
        float(jnp.mean((jax.vmap(bilinear)(low[tr]) - high[tr]) ** 2)),
        color="k",
        ls="--",
        label="bilinear (train)",
    )
    ax.set_xlabel("Adam step")
    ax.set_ylabel("mean squared error (intensity^2)")
    ax.legend()
    run.save_figure(fig, "training.png")
    return {
        "adjoint_identity_max_rel_gap": gap,
        "max_abs_diff_vs_lax": vs_lax,
        "test_mse_network": mse_net,
        "test_mse_bilinear": mse_bilinear,
        "mse_ratio_network_over_bilinear": mse_net / mse_bilinear,
    }
