"""Heads on top of sequence layers: one label per sequence, or one per position."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._rollout import BPTT, AbstractGradient
from ._cells import Bidirectional, Conv, Recurrent, make_cell

POOLS = ("last", "mean", "max", "flatten")


def _encode(layers, xs, mask):
    for layer in layers:
        xs = layer(xs, mask)
    return xs


class SequenceClassifier(eqx.Module):
    """Gives class logits for a whole sequence: layers, a pooling over positions, a linear head.

    **Arguments:**

    - `layers`: a tuple of layers `layer(xs, mask) -> (t, f)` (`Recurrent`,
      `Bidirectional`, `Conv`), applied in order; the last one's `out_size` is `f`.
    - `classes`: number of classes.
    - `pool`: `"last"` (the output at the last real position: a forward network's summary),
      `"mean"` or `"max"` over real positions, or `"flatten"` (all positions, for sequences
      of one fixed `length`).
    - `length`: the sequence length, needed by `"flatten"`.
    - `key`: PRNG key of the head.

    **Call:** `model(xs, mask=None)` with `xs` `(t, 4)` -> logits `(classes,)`.
    """

    layers: tuple
    head: eqx.nn.Linear
    pool: str = eqx.field(static=True)

    def __init__(
        self,
        layers: tuple,
        classes: int,
        *,
        pool: str = "last",
        length: int | None = None,
        key: PRNGKeyArray,
    ):
        if pool not in POOLS:
            raise ValueError(f"SequenceClassifier: pool must be one of {POOLS}, got {pool!r}")
        if pool == "flatten" and (not isinstance(length, int) or length < 1):
            raise ValueError(f"SequenceClassifier: pool='flatten' needs length >= 1, got {length}")
        features = layers[-1].out_size * (length if pool == "flatten" else 1)
        self.layers = tuple(layers)
        self.head = eqx.nn.Linear(features, classes, key=key)
        self.pool = pool

    def __call__(
        self, xs: Float[Array, "t d"], mask: Bool[Array, " t"] | None = None
    ) -> Float[Array, " c"]:
        if mask is None:
            mask = jnp.ones(xs.shape[0], bool)
        hs = _encode(self.layers, xs, mask)
        if self.pool == "last":
            last = jnp.max(jnp.where(mask, jnp.arange(xs.shape[0]), 0))
            z = hs[last]
        elif self.pool == "mean":
            z = jnp.sum(jnp.where(mask[:, None], hs, 0.0), 0) / jnp.maximum(jnp.sum(mask), 1)
        elif self.pool == "max":
            z = jnp.max(jnp.where(mask[:, None], hs, -jnp.inf), 0)
        else:
            z = jnp.where(mask[:, None], hs, 0.0).reshape(-1)
        return self.head(z)


class PositionClassifier(eqx.Module):
    """Gives class logits at every position (donor / acceptor / neither per nucleotide).

    **Arguments:** `layers` (as for `SequenceClassifier`), `classes`, `key`.
    **Call:** `model(xs, mask=None)` -> logits `(t, classes)`.
    """

    layers: tuple
    head: eqx.nn.Linear

    def __init__(self, layers: tuple, classes: int, *, key: PRNGKeyArray):
        self.layers = tuple(layers)
        self.head = eqx.nn.Linear(layers[-1].out_size, classes, key=key)

    def __call__(
        self, xs: Float[Array, "t d"], mask: Bool[Array, " t"] | None = None
    ) -> Float[Array, "t c"]:
        return jax.vmap(self.head)(_encode(self.layers, xs, mask))


def recurrent_layers(
    kind: str,
    hidden: int,
    *,
    input_size: int = 4,
    bidirectional: bool = False,
    depth: int = 1,
    conv_width: int = 0,
    conv_channels: int = 0,
    grad: AbstractGradient = BPTT(),
    timescale: float | None = None,
    key: PRNGKeyArray,
) -> tuple:
    """Gives a stack of recurrent layers, optionally after a convolution (k-mer detector).

    **Arguments:** `kind` (`"rnn"`, `"gru"`, `"lstm"`), `hidden` units per direction,
    `input_size` (4 for one-hot DNA), `bidirectional`, `depth` (recurrent layers),
    `conv_width`/`conv_channels` (0: no convolution first), `grad` (the rollout's gradient
    strategy for every layer), `timescale` (chrono initialisation of gated cells), `key`.
    """
    if depth < 1:
        raise ValueError(f"recurrent_layers: depth must be >= 1, got {depth}")
    keys = jax.random.split(key, depth + 1)
    layers: list = []
    size = input_size
    if conv_width:
        layers.append(Conv(size, conv_channels, conv_width, key=keys[-1]))
        size = conv_channels
    for i in range(depth):
        if bidirectional:
            layer = Bidirectional.of(
                kind, size, hidden, grad=grad, timescale=timescale, key=keys[i]
            )
        else:
            cell = make_cell(kind, size, hidden, timescale=timescale, key=keys[i])
            layer = Recurrent(cell, grad)
        layers.append(layer)
        size = layer.out_size
    return tuple(layers)


def conv_layers(
    channels: int, width: int, depth: int, *, input_size: int = 4, key: PRNGKeyArray
) -> tuple:
    """Gives the small 1D convolutional baseline: `depth` conv + ReLU layers of `channels`."""
    keys = jax.random.split(key, depth)
    layers, size = [], input_size
    for k in keys:
        layers.append(Conv(size, channels, width, key=k))
        size = channels
    return tuple(layers)


def cross_entropy(
    logits: Float[Array, "... c"],
    labels: Int[Array, ...],
    mask: Bool[Array, ...] | None = None,
    weights: Float[Array, " c"] | None = None,
) -> Float[Array, ""]:
    """Gives the mean softmax cross-entropy over the real (masked-in) entries.

    `weights` (one per class) reweights rare classes (splice sites among millions of
    'neither' positions); the mean is then over the summed weights.
    """
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    w = jnp.ones_like(nll) if weights is None else weights[labels]
    if mask is not None:
        w = jnp.where(mask, w, 0.0)
    return jnp.sum(w * nll) / jnp.maximum(jnp.sum(w), 1e-12)
