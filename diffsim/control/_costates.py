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
from .._results import result_repr
from .._rollout import costates, rollout
from ._costs import Cost


class CostateResult(NamedTuple):
    """What `costate_gradient` gives."""

    __repr__ = result_repr

    cost: Scalar
    grad_us: Float[Array, "T m"]
    """dJ/du_t."""
    grad_x0: Float[Array, " n"]
    """dJ/dx_0 = lambda_0."""
    grad_model: Any
    """dJ/d(model), shaped like the model's inexact arrays (physical parameters)."""
    costates: Float[Array, "T1 n"]
    """lambda_0..lambda_T."""
    xs: Float[Array, "T1 n"]
    """The trajectory x_0..x_T."""


def costate_gradient(model, cost: Cost, x0, us, *, t0=0) -> CostateResult:
    """Gives the cost and its gradients by the explicit costate recursion.

    A thin wrapper over `diffsim.costates` (the one costate recursion, `jax.vjp` of a
    single step in a reverse scan): the step is the model with the running cost as its
    output, and the model's parameters ride in the state.

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
    params, static = eqx.partition(model, eqx.is_inexact_array)

    # The model's parameters ride along in the state, unchanged by every step, so their
    # costate at t = 0 is sum_t (dF/dtheta)^T lambda_{t+1}: the parameter gradient.
    def traced_step(state, inp):
        x, p = state
        u, t = inp
        return (eqx.combine(p, static)(x, u), p), (x, cost.running(x, u, t))

    def step(state, inp):
        state, (_, l) = traced_step(state, inp)
        return state, l

    (x_T, _), (xs, ls) = rollout(traced_step, (x0, params), (us, ts))
    final_cotangent = (jax.grad(cost.terminal)(x_T), jax.tree.map(jnp.zeros_like, params))
    (lam_x, lam_p), _, (grad_us, _) = costates(
        step,
        (x0, params),
        (us, ts),
        final_cotangent=final_cotangent,
        out_cotangents=jnp.ones_like(ls),
    )
    return CostateResult(
        cost=jnp.sum(ls) + cost.terminal(x_T),
        grad_us=grad_us,
        grad_x0=lam_x[0],
        grad_model=jax.tree.map(lambda a: a[0], lam_p),
        costates=lam_x,
        xs=jnp.concatenate([xs, x_T[None]]),
    )
