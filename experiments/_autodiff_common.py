"""Pieces shared by the autodiff experiments: a deep MLP with chosen initialisation,
the scikit-learn digits, and a median wall-time timer (reported, never asserted)."""

from __future__ import annotations

import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu}


def init_std(activation: str, init: str, fan_in: int, fan_out: int) -> float:
    """Weight standard deviation: Glorot (sigmoid, tanh) or He (ReLU); "poor" is N(0, 1)."""
    if init == "poor":
        return 1.0
    if activation == "relu":
        return float(np.sqrt(2.0 / fan_in))
    return float(np.sqrt(2.0 / (fan_in + fan_out)))


class DeepMLP(eqx.Module):
    """An MLP of `depth` linear layers with one activation; biases start at zero."""

    layers: list
    activation: str = eqx.field(static=True)

    def __init__(self, n_in, n_out, width, depth, activation, init, *, key):
        sizes = [n_in] + [width] * (depth - 1) + [n_out]
        keys = jax.random.split(key, depth)
        layers = []
        for k, a, b in zip(keys, sizes[:-1], sizes[1:]):
            lin = eqx.nn.Linear(a, b, key=k)
            w = jax.random.normal(k, (b, a)) * init_std(activation, init, a, b)
            layers.append(eqx.tree_at(lambda l: (l.weight, l.bias), lin, (w, jnp.zeros(b))))
        self.layers = layers
        self.activation = activation

    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)


def digits(dtype=None):
    """The 1797 scikit-learn 8x8 digits: images in [0, 1] (n, 8, 8) and labels (n,)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = jnp.asarray(d.images / 16.0, dtype=dtype)
    return images, jnp.asarray(d.target)


def median_time(fn, *args, repeats: int = 3) -> float:
    """Median wall time (s) of `repeats` calls after one warm-up (compile) call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def op_count(fn, *args) -> float:
    """Floating-point operations plus transcendentals of `jit(fn)(*args)`, by XLA's cost
    analysis. XLA counts a loop body once, whatever its trip count."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, list):
        cost = cost[0]
    return float(cost.get("flops", 0.0)) + float(cost.get("transcendentals", 0.0))
