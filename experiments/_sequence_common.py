"""Shared by the splice experiments: training a sequence model through `diffsim.fit`."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import diffsim
from diffsim import sequence as sq


def front_pad(xs, multiple: int):
    """Prepends masked positions so that the length is a multiple of `multiple`.

    `Truncated(k)` cuts a rollout into blocks of k from its start; padding the front makes
    the last block end at the last position, so a prediction there gets credit from exactly
    the k - 1 positions before it (no more, no less), whatever the sequence length.
    Returns `(xs, mask)` with `xs` of shape `(n, t', 4)`.
    """
    n, t, d = xs.shape
    pad = (-t) % multiple
    mask = jnp.concatenate([jnp.zeros((n, pad), bool), jnp.ones((n, t), bool)], axis=1)
    return jnp.concatenate([jnp.zeros((n, pad, d), xs.dtype), xs], axis=1), mask


def optimizer(lr: float, clip: float = 1.0):
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr))


def train(model, batch_fn, *, steps, lr, key, directory, resume, weights=None, log_every=25):
    """Trains `model` (sequence- or position-level) on `batch_fn(key, step) -> (xs, mask,
    labels)` by Adam with gradient clipping; gives the trained model and the history."""

    def loss(m, batch, key):
        xs, mask, labels = batch
        logits = jax.vmap(m)(xs, mask)
        lmask = None if labels.ndim == 1 else mask
        return sq.cross_entropy(logits, labels, lmask, weights)

    res = diffsim.fit(
        loss,
        model,
        optimizer(lr),
        steps=steps,
        key=key,
        batch_fn=batch_fn,
        log_every=log_every,
        directory=directory,
        resume=resume,
    )
    return res.params, res.history


def predict(model, xs, mask, batch: int = 256):
    """Logits of a sequence-level model for many sequences, in chunks."""
    f = eqx.filter_jit(jax.vmap(model))
    return jnp.concatenate(
        [f(xs[i : i + batch], mask[i : i + batch]) for i in range(0, xs.shape[0], batch)]
    )
