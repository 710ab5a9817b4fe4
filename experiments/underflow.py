"""Gradient underflow in float16 and bfloat16, and loss scaling restoring it.

The 50-layer sigmoid MLP of `vanishing_exploding` (Glorot initialisation) has gradients
that shrink about 4x per layer going back, so the early layers' gradients are tiny. The
experiment computes them natively in float32, bfloat16 and float16 and counts, per layer,
the entries that are exactly zero: float16 (least subnormal 6e-8) flushes whole layers;
bfloat16 keeps float32's exponent range and loses none to underflow. Loss scaling -- the
gradient of S * loss, S the largest power of two whose gradients stay finite, divided by S
in float32 -- moves float16's window up and restores layers.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import diffsim.autodiff as ad

from ._autodiff_common import ACTIVATIONS, DeepMLP, digits
from .vanishing_exploding import loss_fn

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = False
    depth: int = dataclasses.field(default=50, metadata={"min": 3})
    width: int = dataclasses.field(default=64, metadata={"min": 1})
    batch: int = dataclasses.field(default=256, metadata={"min": 1})
    activation: str = "sigmoid"
    max_log2_scale: int = dataclasses.field(default=40, metadata={"min": 0, "max": 120})

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"key 'activation': unknown {self.activation!r}; allowed {list(ACTIVATIONS)}"
            )


def cast(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree)


@eqx.filter_jit
def _grads(m, xd, y, scale):
    return eqx.filter_grad(lambda m: loss_fn(m, xd, y) * scale.astype(xd.dtype))(m)


def grads_in(model, x, y, dtype, scale=1.0):
    """Gradients of scale * loss computed entirely in `dtype` (one compilation per dtype)."""
    return _grads(cast(model, dtype), x.astype(dtype), y, jnp.asarray(scale, jnp.float32))


def fractions(grads):
    return np.array([float(v) for v in ad.zero_fraction(grads).values()])


def all_finite(grads):
    return all(
        bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(eqx.filter(grads, eqx.is_array))
    )


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    images, labels = digits(jnp.float32)
    x, y = images.reshape(len(images), -1)[: cfg.batch], labels[: cfg.batch]
    model = DeepMLP(
        64, 10, cfg.width, cfg.depth, cfg.activation, "standard", key=jax.random.key(cfg.seed)
    )
    metrics: dict = {}
    curves = {}
    for name, dtype in DTYPES.items():
        f = fractions(grads_in(model, x, y, dtype))
        curves[name] = f
        metrics[f"{name}.layers_all_zero"] = int(np.sum(f == 1.0))
        metrics[f"{name}.mean_zero_fraction"] = float(f.mean())
        run.log(
            f"{name}: {int(np.sum(f == 1.0))} of {len(f)} layers entirely zero, "
            f"mean zero fraction {f.mean():.3f}"
        )
    g32 = grads_in(model, x, y, jnp.float32)
    norms = np.array([float(v) for v in ad.layer_gradient_norms(g32).values()])
    # float32 gradients cast afterwards (what storing them in float16 would do)
    cast16 = np.array([float(v) for v in ad.zero_fraction(g32, jnp.float16).values()])
    metrics["float32_cast_to_float16.layers_all_zero"] = int(np.sum(cast16 == 1.0))

    # Loss scaling: the largest power of two whose float16 gradients are all finite.
    log2 = 0
    for k in range(cfg.max_log2_scale, -1, -1):
        if all_finite(grads_in(model, x, y, jnp.float16, 2.0**k)):
            log2 = k
            break
    scaled = grads_in(model, x, y, jnp.float16, 2.0**log2)
    f_scaled = fractions(scaled)
    curves[f"float16, loss scale 2^{log2}"] = f_scaled
    restored = cast(scaled, jnp.float32)
    restored = jax.tree.map(lambda a: a / 2.0**log2 if eqx.is_inexact_array(a) else a, restored)
    # agreement of the restored float16 gradients with float32 on the layers where scaled
    # float16 has no more zeros than float32
    rel = [
        float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))
        for a, b, keep in zip(
            ad.layer_gradient_norms(restored).values(),
            ad.layer_gradient_norms(g32).values(),
            f_scaled <= curves["float32"],
        )
        if keep
    ]
    metrics["loss_scale_log2"] = log2
    metrics["float16_scaled.layers_all_zero"] = int(np.sum(f_scaled == 1.0))
    metrics["float16_scaled.mean_zero_fraction"] = float(f_scaled.mean())
    metrics["layers_restored_by_scaling"] = metrics["float16.layers_all_zero"] - int(
        np.sum(f_scaled == 1.0)
    )
    metrics["float16_scaled.max_norm_rel_error_kept_layers"] = max(rel) if rel else float("nan")
    metrics["float32.layer_norms"] = norms.tolist()
    run.log(
        f"loss scale 2^{log2}: float16 layers entirely zero "
        f"{metrics['float16.layers_all_zero']} -> "
        f"{metrics['float16_scaled.layers_all_zero']}; restored layers' norms within "
        f"{metrics['float16_scaled.max_norm_rel_error_kept_layers']:.2g} of float32"
    )

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    layers = np.arange(1, cfg.depth + 1)
    for name, f in curves.items():
        axes[0].plot(layers, f, label=name, marker="." if "scale" in name else None)
    axes[0].set_xlabel("layer (1 = input side)")
    axes[0].set_ylabel("fraction of gradient entries exactly zero")
    axes[0].set_title(f"{cfg.depth}-layer {cfg.activation} MLP: underflow by dtype")
    axes[0].legend()
    axes[1].semilogy(layers, norms, label="float32 gradient norm")
    axes[1].axhline(
        float(jnp.finfo(jnp.float16).smallest_subnormal),
        color="r",
        ls="--",
        label="float16 least subnormal",
    )
    axes[1].axhline(
        float(jnp.finfo(jnp.bfloat16).smallest_normal),
        color="g",
        ls=":",
        label="bfloat16 least normal",
    )
    axes[1].set_xlabel("layer (1 = input side)")
    axes[1].set_ylabel("||dL/d layer|| (nats per unit weight)")
    axes[1].legend()
    run.save_figure(fig, "underflow.png")
    return metrics
