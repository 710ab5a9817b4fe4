"""Trajectory optimisation by shooting: gradient descent on the controls through the rollout.

Single shooting differentiates the whole rollout (backpropagation through time, with
any of the rollout core's gradient strategies). Multiple shooting also optimises the
states at segment boundaries ("knots") and penalises the defects between the end of a
segment and the next knot; the segments are rolled out in parallel (`vmap`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .._custom_types import Array, Float, Scalar
from .._results import result_repr
from .._rollout import BPTT, AbstractGradient, rollout
from ._costs import Cost, trajectory_cost


class ShootingResult(NamedTuple):
    """What `shoot` gives."""

    __repr__ = result_repr

    params: Any
    """The optimised decision variables (controls `(T, m)` or `MultipleShootingVars`)."""
    cost: Scalar
    """The objective at `params`."""
    history: Float[Array, " steps1"]
    """The objective before each update and at the end."""


def single_shooting(model, cost: Cost, x0, *, grad: AbstractGradient = BPTT(), t0=0):
    """Gives the single-shooting objective `J(us)` (`us` of shape `(T, m)`).

    Its `jax.grad` is backpropagation through time of the rollout, with the strategy
    `grad` (`BPTT()`, `Checkpointed()`, `DiscreteAdjoint()`).
    """

    def objective(us):
        return trajectory_cost(model, cost, x0, us, grad=grad, t0=t0)

    return objective


class MultipleShootingVars(eqx.Module):
    """Multiple-shooting variables: controls, and the states opening segments 2..S."""

    us: Float[Array, "T m"]
    # "knots" (S - 1 of them) is a named axis: jaxtyping cannot check a symbolic "S-1"
    # whose S no argument binds.
    knots: Float[Array, "knots n"]


def multiple_shooting_init(model, x0, us, segments: int) -> MultipleShootingVars:
    """Gives multiple-shooting variables whose knots lie on the rollout of `us` (zero defects)."""
    _check_segments(us, segments)
    from ._discrete import trajectory

    xs = trajectory(model, x0, us)
    k = us.shape[0] // segments
    return MultipleShootingVars(us=us, knots=xs[k:-1:k][: segments - 1])


def _check_segments(us, segments):
    if not (isinstance(segments, int) and segments >= 1 and us.shape[0] % segments == 0):
        raise ValueError(
            f"multiple shooting: segments must be an int >= 1 dividing T = {us.shape[0]}, "
            f"got {segments!r}"
        )


def multiple_shooting(
    model, cost: Cost, x0, segments: int, *, defect_weight=100.0, grad=BPTT(), t0=0
):
    """Gives the multiple-shooting objective `J(vars)` and the defect function.

    J = sum of running costs along each segment (each started from its knot) + the
    terminal cost at the end of the last segment + `defect_weight * sum |defect|^2`,
    with defect_s = (end of segment s) - knot_{s+1}. At zero defects it equals the
    single-shooting cost.

    **Returns:** `(objective, defects)`: `objective(vars) -> scalar`,
    `defects(vars) -> (S-1, n)`.
    """

    def segment_ends(v: MultipleShootingVars):
        _check_segments(v.us, segments)
        T = v.us.shape[0]
        k = T // segments
        starts = jnp.concatenate([x0[None], v.knots])
        useg = v.us.reshape(segments, k, -1)
        tseg = t0 + jnp.arange(T).reshape(segments, k)

        def run(xs0, u, ts):
            def step(x, inp):
                uu, t = inp
                return model(x, uu), cost.running(x, uu, t)

            x_end, ls = rollout(step, xs0, (u, ts), grad=grad)
            return x_end, jnp.sum(ls)

        return jax.vmap(run)(starts, useg, tseg)

    def defects(v):
        ends, _ = segment_ends(v)
        return ends[:-1] - v.knots

    def objective(v):
        ends, ls = segment_ends(v)
        d = ends[:-1] - v.knots
        return jnp.sum(ls) + cost.terminal(ends[-1]) + defect_weight * jnp.sum(d**2)

    return objective, defects


def shoot(objective, params, optimizer: optax.GradientTransformation, *, steps: int):
    """Gives the decision variables after `steps` optax updates of `objective` (one jitted scan).

    Works with first-order optimisers (`optax.adam`) and with `optax.lbfgs` (the
    objective's value, gradient and the function itself are passed to `update`, as
    its line search needs). For logging, checkpoints and early stopping use
    `diffsim.fit` with the same objective.

    **Arguments:** `objective(params) -> scalar`; `params` a pytree (controls, or
    `MultipleShootingVars`); `optimizer`; `steps` >= 0.

    **Returns:** a `ShootingResult`.

    **Example:** `res = shoot(single_shooting(model, cost, x0), us0, optax.lbfgs(), steps=200)`
    """
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"shoot: steps must be an int >= 0, got {steps!r}")
    value_and_grad = jax.value_and_grad(objective)

    @eqx.filter_jit
    def run(params):
        state = optimizer.init(params)

        def body(carry, _):
            p, s = carry
            value, g = value_and_grad(p)
            # optax's line-search optimisers take these extra arguments (see fit).
            updates, s = optimizer.update(g, s, p, value=value, grad=g, value_fn=objective)  # pyright: ignore[reportCallIssue]
            return (optax.apply_updates(p, updates), s), value

        (p, _), hist = jax.lax.scan(body, (params, state), None, length=steps)
        final = objective(p)
        return p, final, jnp.concatenate([hist, final[None]])

    return ShootingResult(*run(params))
