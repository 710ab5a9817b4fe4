"""System identification: fit physical parameters to observed trajectories by BPTT."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Scalar
from .._rollout import BPTT, AbstractGradient
from ._discrete import trajectory


def with_parameters(module: eqx.Module, **values) -> eqx.Module:
    """Gives a copy of a system (or any module) with the named fields replaced.

    **Raises:** `ValueError` naming an unknown field.

    **Example:** `with_parameters(CartPole(), pole_mass=0.2, length=jnp.array(0.6))`
    """
    for name in values:
        if not hasattr(module, name):
            raise ValueError(f"with_parameters: {type(module).__name__} has no field {name!r}")
    names = list(values)
    return eqx.tree_at(
        lambda m: [getattr(m, k) for k in names],
        module,
        [values[k] for k in names],
        is_leaf=lambda x: x is None,
    )


def prediction_loss(
    model,
    observed: Float[Array, "*B T1 n"],
    us: Float[Array, "*B T m"],
    *,
    window: int | None = None,
    grad: AbstractGradient = BPTT(),
) -> Scalar:
    """Gives the mean squared error between a model's predictions and observed trajectories.

    Each trajectory is split into windows of `window` steps (default: the whole
    trajectory); each window is simulated from its observed first state under the
    recorded controls, and compared with the observed states that follow. Its
    gradient with respect to the model's parameters is backpropagation through time.

    **Arguments:** `model(x, u) -> x_next`; `observed` states `(B, T+1, n)` (or one
    trajectory `(T+1, n)`); `us` controls `(B, T, m)` (or `(T, m)`); `window` dividing T.

    **Raises:** `ValueError` for mismatched shapes or a `window` not dividing T.
    """
    if observed.ndim == 2:
        observed, us = observed[None], us[None]
    if observed.ndim != 3 or us.ndim != 3 or observed.shape[:2] != (us.shape[0], us.shape[1] + 1):
        raise ValueError(
            f"prediction_loss: need observed (B, T+1, n) and us (B, T, m), got "
            f"{observed.shape} and {us.shape}"
        )
    T = us.shape[1]
    window = T if window is None else window
    if not (isinstance(window, int) and 1 <= window <= T and T % window == 0):
        raise ValueError(f"prediction_loss: window must be an int dividing T = {T}, got {window!r}")
    nw = T // window
    starts = observed[:, :-1:window][:, :nw]  # (B, nw, n)
    targets = observed[:, 1:].reshape(observed.shape[0], nw, window, -1)
    u_win = us.reshape(us.shape[0], nw, window, -1)

    def one(x0, u):
        return trajectory(model, x0, u, grad=grad)[1:]

    pred = jax.vmap(jax.vmap(one))(starts, u_win)
    return jnp.mean((pred - targets) ** 2)
