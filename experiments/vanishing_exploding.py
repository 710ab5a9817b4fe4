"""Vanishing and exploding gradients in a 50-layer MLP: activations and initialisation.

At initialisation, the gradient of each layer's weights of a deep MLP (sigmoid, tanh,
ReLU; Glorot / He scaling or a poor unscaled N(0, 1)) on the scikit-learn digits: sigmoid's
derivative is at most 1/4, so its gradient shrinks by about that factor or more per layer
going back; ReLU with He initialisation keeps it level. Then plain SGD trains networks of
several depths with each activation (standard initialisation) to show which depths train.
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

from ._autodiff_common import ACTIVATIONS, DeepMLP, digits


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    depth: int = dataclasses.field(default=50, metadata={"min": 3})
    width: int = dataclasses.field(default=64, metadata={"min": 1})
    batch: int = dataclasses.field(default=256, metadata={"min": 1})
    activations: list[str] = dataclasses.field(default_factory=lambda: ["sigmoid", "tanh", "relu"])
    inits: list[str] = dataclasses.field(default_factory=lambda: ["standard", "poor"])
    train_depths: list[int] = dataclasses.field(default_factory=lambda: [2, 5, 10, 20, 50])
    train_steps: int = dataclasses.field(default=300, metadata={"min": 0})
    lr: float = dataclasses.field(default=0.1, metadata={"min_exclusive": 0})

    def __post_init__(self):
        bad = [a for a in self.activations if a not in ACTIVATIONS]
        if bad:
            raise ValueError(f"key 'activations': unknown {bad}; allowed {list(ACTIVATIONS)}")
        bad = [i for i in self.inits if i not in ("standard", "poor")]
        if bad:
            raise ValueError(f"key 'inits': unknown {bad}; allowed ['standard', 'poor']")


def loss_fn(model, x, y):
    logits = jax.vmap(model)(x)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def layer_norms(model, x, y):
    """Gradient norm of each layer's weights and bias, first layer first."""
    grads = eqx.filter_grad(loss_fn)(model, x, y)
    return np.array([float(v) for v in ad.layer_gradient_norms(grads).values()])


def decay_per_layer(norms):
    """Geometric-mean factor by which the gradient shrinks per layer going back, over the
    hidden layers (first and last layers have other shapes)."""
    inner = np.log(norms[1:-1])
    slope = np.polyfit(np.arange(len(inner)), inner, 1)[0]
    return float(np.exp(slope))


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    images, labels = digits()
    x_all = images.reshape(len(images), -1)
    key = jax.random.key(cfg.seed)
    x, y = x_all[: cfg.batch], labels[: cfg.batch]
    metrics: dict = {}

    fig, axes = plt.subplots(1, len(cfg.inits), figsize=(6 * len(cfg.inits), 4.4), squeeze=False)
    for ax, init in zip(axes[0], cfg.inits):
        for act in cfg.activations:
            model = DeepMLP(64, 10, cfg.width, cfg.depth, act, init, key=key)
            norms = layer_norms(model, x, y)
            factor = decay_per_layer(norms)
            metrics[f"{act}.{init}.shrink_per_layer"] = factor
            metrics[f"{act}.{init}.first_over_last"] = float(norms[0] / norms[-1])
            metrics[f"{act}.{init}.norms"] = norms.tolist()
            run.log(
                f"{act}, {init} init: gradient shrinks x{factor:.3g} per layer going back; "
                f"first layer / last layer {norms[0] / norms[-1]:.3g}"
            )
            ax.semilogy(np.arange(1, len(norms) + 1), norms, label=act)
        ax.set_xlabel("layer (1 = input side)")
        ax.set_ylabel("||dL/d layer|| at initialisation (nats per unit weight)")
        ax.set_title(f"{cfg.depth} layers, {init} initialisation")
        ax.legend()
    run.save_figure(fig, "layer_gradient_norms.png")

    # Which depths train: plain SGD (Adam would rescale vanishing gradients per parameter).
    n_train = 1500
    batch_fn = lambda k, step: jax.random.choice(k, n_train, (cfg.batch,))
    fig, axes = plt.subplots(
        1, len(cfg.activations), figsize=(5.2 * len(cfg.activations), 4), squeeze=False
    )
    for ax, act in zip(axes[0], cfg.activations):
        for depth in cfg.train_depths:
            model = DeepMLP(64, 10, cfg.width, depth, act, "standard", key=key)
            result = diffsim.fit(
                lambda m, idx, k: loss_fn(m, x_all[idx], labels[idx]),
                model,
                optax.sgd(cfg.lr),
                steps=cfg.train_steps,
                key=jax.random.fold_in(key, depth),
                batch_fn=batch_fn,
                directory=run.dir / "train" / f"{act}-{depth}",
                resume=run.resume,
                log_every=10,
            )
            test_logits = jax.vmap(result.params)(x_all[n_train:])
            acc = float(jnp.mean(jnp.argmax(test_logits, -1) == labels[n_train:]))
            first, last = result.history[0]["loss"], result.history[-1]["loss"]
            metrics[f"train.{act}.{depth}.final_loss"] = last
            metrics[f"train.{act}.{depth}.test_accuracy"] = acc
            run.log(
                f"train {act} depth {depth}: loss {first:.3f} -> {last:.3f}, test acc {acc:.3f}"
            )
            steps = [r["step"] for r in result.history]
            ax.plot(steps, [r["loss"] for r in result.history], label=f"depth {depth}")
        ax.axhline(np.log(10), color="k", ls=":", label="chance (ln 10)")
        ax.set_xlabel("SGD step")
        ax.set_ylabel("training cross-entropy (nats)")
        ax.set_title(f"{act}, standard initialisation")
        ax.legend()
    run.save_figure(fig, "training_by_depth.png")
    return metrics
