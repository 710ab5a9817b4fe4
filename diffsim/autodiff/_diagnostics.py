"""Gradient diagnostics for equinox models: per-layer norms, rollout Jacobian spectra,
and how many gradient entries a low-precision cast flushes to zero."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

import diffsim


def _layer_name(path) -> str:
    """The path to the module owning a leaf: `.layers[3].weight` -> `layers[3]`."""
    keys = list(path)
    if keys and isinstance(keys[-1], jtu.GetAttrKey):
        keys = keys[:-1]
    return jtu.keystr(tuple(keys)).lstrip(".") or "<root>"


def _by_layer(tree: Any) -> dict[str, list[Array]]:
    groups: dict[str, list[Array]] = {}
    leaves = jtu.tree_flatten_with_path(eqx.filter(tree, eqx.is_inexact_array))[0]
    for path, leaf in leaves:
        if leaf is None:
            continue
        groups.setdefault(_layer_name(path), []).append(leaf)
    return groups


def layer_gradient_norms(grads: Any) -> dict[str, Float[Array, ""]]:
    """Gives the Euclidean norm of the gradient of each layer of an equinox model.

    A layer is the module that owns the arrays (`Linear`'s weight and bias together), named
    by its path in the model (`layers[3]`); the dict is in the model's leaf order.

    **Arguments:**

    - `grads`: a gradient pytree shaped like the model, e.g. `eqx.filter_grad(loss)(model, x)`.

    **Returns:** `{layer path: norm}` (scalar arrays).

    **Raises:** `ValueError` if `grads` holds no floating-point arrays.

    **Example:**

    ```python
    norms = layer_gradient_norms(eqx.filter_grad(loss)(mlp, x, y))   # {"layers[0]": ..., ...}
    ```
    """
    groups = _by_layer(grads)
    if not groups:
        raise ValueError("layer_gradient_norms: grads holds no floating-point arrays")
    # Half-precision gradients are squared in float32: their squares would underflow.
    wide = lambda a: a.astype(jnp.float32) if a.dtype.itemsize < 4 else a
    return {
        name: jnp.sqrt(sum(jnp.sum(jnp.square(wide(a))) for a in leaves))
        for name, leaves in groups.items()
    }


def zero_fraction(
    grads: Any, dtype: Any = None, *, scale: float = 1.0
) -> dict[str, Float[Array, ""]]:
    """Gives, per layer, the fraction of gradient entries that are exactly zero after a cast.

    **Arguments:**

    - `grads`: a gradient pytree shaped like an equinox model (any float dtype).
    - `dtype`: cast every entry to this dtype first (`jnp.float16`, `jnp.bfloat16`); `None`
      keeps the dtype (count the zeros already there).
    - `scale`: multiply before the cast (loss scaling: gradients of `scale * loss`).

    **Returns:** `{layer path: fraction in [0, 1]}`.

    **Raises:** `ValueError` if `grads` holds no floating-point arrays, or `scale <= 0`.

    **Example:** `zero_fraction(grads, jnp.float16)["layers[0]"]` is the share of the first
    layer's gradient that float16 flushes to zero.
    """
    if not scale > 0:
        raise ValueError(f"zero_fraction: scale must be > 0, got {scale}")
    groups = _by_layer(grads)
    if not groups:
        raise ValueError("zero_fraction: grads holds no floating-point arrays")
    out = {}
    for name, leaves in groups.items():
        zeros = 0
        total = 0
        for a in leaves:
            a = a * scale if scale != 1.0 else a
            c = a.astype(dtype) if dtype is not None else a
            zeros = zeros + jnp.sum(c == 0)
            total += a.size
        out[name] = zeros / total
    return out


def rollout_jacobian_spectrum(
    step: Callable, state0: Any, xs: Any = None, *, length: int | None = None
) -> Float[Array, "t n"]:
    """Gives the singular values of each step's state Jacobian d s_{t+1} / d s_t along a rollout.

    Their product over t bounds how a gradient grows or decays going back through the
    rollout: the largest singular value above 1 at every step means exploding
    gradients are possible, all below 1 means they vanish.

    **Arguments:**

    - `step`: `(state, x) -> (state, out)` as for `diffsim.rollout`.
    - `state0`: the initial state (any pytree of floating arrays, n entries in all).
    - `xs`, `length`: as for `diffsim.rollout`.

    **Returns:** `(T, n)`, the singular values of the T step Jacobians, largest first.

    **Raises:** `ValueError` as `diffsim.rollout` does.

    **Example:**

    ```python
    sv = rollout_jacobian_spectrum(lambda h, x: (jnp.tanh(W @ h + x), None), h0, xs)
    growth = jnp.sum(jnp.log(sv[:, 0]))   # log of a bound on ||ds_T / ds_0||
    ```
    """
    _, unravel = ravel_pytree(state0)

    def record(s, x):
        s2, _ = step(s, x)
        return s2, s

    _, states = diffsim.rollout(record, state0, xs, length=length)
    if xs is None:
        xs_seq = jnp.zeros((jtu.tree_leaves(states)[0].shape[0],))
        flat_step = lambda s, x: ravel_pytree(step(unravel(s), None)[0])[0]
    else:
        xs_seq = xs
        flat_step = lambda s, x: ravel_pytree(step(unravel(s), x)[0])[0]
    flat_states = jax.vmap(lambda s: ravel_pytree(s)[0])(states)
    jacobians = jax.vmap(jax.jacfwd(flat_step))(flat_states, xs_seq)
    return jnp.linalg.svd(jacobians, compute_uv=False)
