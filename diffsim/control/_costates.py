"""The Pontryagin costate (adjoint) gradient of a trajectory cost, written out.

    lambda_T = dl_T/dx_T
    lambda_t = dl_t/dx_t + (dF/dx_t)^T lambda_{t+1}
    dJ/du_t  = dl_t/du_t + (dF/du_t)^T lambda_{t+1}
    dJ/dtheta = sum_t (dF/dtheta)^T lambda_{t+1}

with F the discrete model. It is the same computation as backpropagation through
time (`jax.grad` of `trajectory_cost`), and the tests check they agree to 1e-10.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Scalar
from ._costs import Cost


class CostateResult(NamedTuple):
    """What `costate_gradient` gives."""

    cost: Scalar
    grad_us: Float[Array, "T m"]
    """dJ/du_t."""
    grad_x0: Float[Array, " n"]
    """dJ/dx_0 = lambda_0."""
    grad_model: Any
    """dJ/d(model), shaped like the model's inexact arrays (physical parameters)."""
    costates: Float[Array, "T+1 n"]
    """lambda_0..lambda_T."""
    xs: Float[Array, "T+1 n"]
    """The trajectory x_0..x_T."""


def costate_gradient(model, cost: Cost, x0, us, *, t0=0) -> CostateResult:
    """Gives the cost and its gradients by the explicit costate recursion.

    One forward pass stores x_0..x_T; one reverse `lax.scan` runs the recursion above
    with `jax.vjp` of a single model step and `jax.grad` of the running cost.

    **Arguments:** `model(x, u) -> x_next`, a `Cost`, `x0` `(n,)`, `us` `(T, m)`,
    `t0` the time index of the first step.

    **Returns:** a `CostateResult`.

    **Example:** `res = costate_gradient(model, cost, x0, us); res.grad_us  # == jax.grad`
    """
    if jnp.ndim(us) != 2 or us.shape[0] < 1:
        raise ValueError(
            f"costate_gradient: us must have shape (T, m), T >= 1, got {jnp.shape(us)}"
        )
    ts = t0 + jnp.arange(us.shape[0])

    def forward(x, inp):
        u, t = inp
        return model(x, u), (x, cost.running(x, u, t))

    x_T, (xs, ls) = jax.lax.scan(forward, x0, (us, ts))
    J = jnp.sum(ls) + cost.terminal(x_T)
    lam_T = jax.grad(cost.terminal)(x_T)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    g_model0 = jax.tree.map(jnp.zeros_like, params)

    def backward(carry, inp):
        lam_next, g_model = carry
        x, u, t = inp
        lx, lu = jax.grad(cost.running, argnums=(0, 1))(x, u, t)
        _, vjp = jax.vjp(lambda p, x_, u_: eqx.combine(p, static)(x_, u_), params, x, u)
        fp, fx, fu = vjp(lam_next)
        lam = lx + fx
        return (lam, jax.tree.map(jnp.add, g_model, fp)), (lam, lu + fu)

    (lam0, g_model), (lams, grad_us) = jax.lax.scan(
        backward, (lam_T, g_model0), (xs, us, ts), reverse=True
    )
    return CostateResult(
        cost=J,
        grad_us=grad_us,
        grad_x0=lam0,
        grad_model=g_model,
        costates=jnp.concatenate([lams, lam_T[None]]),
        xs=jnp.concatenate([xs, x_T[None]]),
    )
