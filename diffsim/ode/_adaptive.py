"""Adaptive steps for embedded Runge-Kutta pairs: a PI controller in a bounded rollout.

A `lax.while_loop` cannot be reverse-differentiated, so the attempts run as a
`diffsim.rollout` of exactly `max_steps` iterations; once the last time in `ts` is
reached the remaining iterations pass the state through (`lax.cond`, which becomes a
select under `vmap`). Steps are clipped to land on every time in `ts`, whose states go
into a buffer carried along. Step sizes are a discretisation choice: the controller
sees the error through `stop_gradient`, so the gradient is that of the solution on the
chosen mesh (no derivative of accept/reject decisions, no NaN from the norm at 0).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from .._custom_types import Array, Float, PyTree, RealScalarLike, Scalar
from .._rollout import AbstractGradient, rollout
from ._base import AbstractAdaptiveRK, VectorField


class PIController(eqx.Module):
    """Proportional-integral step-size control for embedded Runge-Kutta pairs.

    After a step with scaled error norm e (accept if e <= 1), the next step is
    h * clip(safety * e^(-alpha / k) * e_prev^(beta / k), factor_min, factor_max),
    k = error order + 1 (Gustafsson / Hairer-Wanner PI control).

    **Arguments:**

    - `alpha`, `beta`: integral and proportional exponents (times 1/k); beta = 0 is
      the classic I-controller.
    - `safety`: safety factor < 1.
    - `factor_min`, `factor_max`: bounds of the change of step size per attempt.
    """

    alpha: float = 0.7
    beta: float = 0.4
    safety: float = 0.9
    factor_min: float = 0.2
    factor_max: float = 10.0

    def __check_init__(self):
        if not 0 < self.safety <= 1:
            raise ValueError(f"PIController: safety must be in (0, 1], got {self.safety}")
        if not 0 < self.factor_min < 1 < self.factor_max:
            raise ValueError(
                "PIController: need 0 < factor_min < 1 < factor_max, got "
                f"factor_min={self.factor_min}, factor_max={self.factor_max}"
            )

    def factor(self, e: Scalar, e_prev: Scalar, k: int) -> Scalar:
        """Gives the step-size factor from the current and previous error norms."""
        e = jnp.maximum(e, 1e-10)
        fac = self.safety * e ** (-self.alpha / k) * e_prev ** (self.beta / k)
        fac = jnp.clip(fac, self.factor_min, self.factor_max)
        return jnp.where(jnp.isfinite(e), fac, self.factor_min)


class AdaptiveState(eqx.Module):
    t: jax.Array
    y: object
    h: jax.Array
    f0: object
    e_prev: jax.Array
    index: jax.Array  # index in ts of the next time to reach
    ys: object  # states at ts (NaN where not reached yet)
    accepted: jax.Array
    rejected: jax.Array


def _rms(tree):
    leaves = jtu.tree_leaves(tree)
    total = sum(jnp.sum(jnp.abs(x) ** 2) for x in leaves)
    size = sum(x.size for x in leaves)
    return jnp.sqrt(total / size)


def _scaled(err, y0, y1, rtol, atol):
    return jtu.tree_map(
        lambda e, a, b: e / (atol + rtol * jnp.maximum(jnp.abs(a), jnp.abs(b))), err, y0, y1
    )


def initial_step(
    solver: Any,  # any solver with an `error_order`
    f: VectorField,
    t0: Scalar,
    y0: PyTree,
    args: Any,
    f0: PyTree,
    rtol: RealScalarLike,
    atol: RealScalarLike,
    span: Scalar,
) -> Scalar:
    """Hairer-Norsett-Wanner's starting step size (II.4), capped by the first interval."""
    y0, f0 = jax.lax.stop_gradient((y0, f0))
    scale = jtu.tree_map(lambda a: atol + rtol * jnp.abs(a), y0)
    d0 = _rms(jtu.tree_map(lambda a, s: a / s, y0, scale))
    d1 = _rms(jtu.tree_map(lambda a, s: a / s, f0, scale))
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
    h0 = jnp.minimum(h0, span)
    y1 = jtu.tree_map(lambda a, b: a + h0 * b, y0, f0)
    f1 = jax.lax.stop_gradient(f(t0 + h0, y1, args))
    d2 = _rms(jtu.tree_map(lambda a, b, s: (a - b) / s, f1, f0, scale)) / h0
    k = solver.error_order + 1
    h1 = jnp.where(
        jnp.maximum(d1, d2) <= 1e-15,
        jnp.maximum(1e-6, h0 * 1e-3),
        (0.01 / jnp.maximum(d1, d2)) ** (1.0 / k),
    )
    return jnp.minimum(jnp.minimum(100 * h0, h1), span)


def integrate_adaptive(
    solver: AbstractAdaptiveRK,
    f: VectorField,
    y0: PyTree,
    ts: Float[Array, " m"],
    args: Any,
    *,
    rtol: RealScalarLike,
    atol: RealScalarLike,
    max_steps: int,
    dt0: RealScalarLike | None,
    controller: PIController,
    grad: AbstractGradient,
) -> tuple[PyTree, Array, Array, Array]:
    """States at `ts` and whether `ts[-1]` was reached within `max_steps` attempts.

    Returns `(ys, reached, accepted_steps, rejected_steps)`.
    """
    m = ts.shape[0] - 1
    t0 = ts[0]
    f0 = f(t0, y0, args)
    if dt0 is None:
        h = initial_step(solver, f, t0, y0, args, f0, rtol, atol, ts[1] - ts[0])
    else:
        h = jnp.asarray(dt0, jnp.result_type(ts))
    ys = jtu.tree_map(lambda a: jnp.full((m + 1, *a.shape), jnp.nan, a.dtype).at[0].set(a), y0)
    k = solver.error_order + 1
    state = AdaptiveState(
        t=jnp.asarray(t0),
        y=y0,
        h=jax.lax.stop_gradient(jnp.asarray(h, jnp.result_type(t0))),
        f0=f0,
        e_prev=jnp.ones((), jnp.result_type(t0)),
        index=jnp.ones((), jnp.int32),
        ys=ys,
        accepted=jnp.zeros((), jnp.int32),
        rejected=jnp.zeros((), jnp.int32),
    )

    def attempt(s: AdaptiveState) -> AdaptiveState:
        t_next = ts[s.index]
        gap = t_next - s.t
        hits = s.h >= gap
        h = jnp.where(hits, gap, s.h)
        y1, err, f1 = solver.step_with_error(f, s.t, s.y, args, h, k0=s.f0)
        e = jax.lax.stop_gradient(_rms(_scaled(err, s.y, y1, rtol, atol)))
        ok = e <= 1.0
        fac = controller.factor(e, s.e_prev, k)
        h_new = jax.lax.stop_gradient(h * fac)
        save = ok & hits
        t = jnp.where(ok, jnp.where(hits, t_next, s.t + h), s.t)
        y = jtu.tree_map(lambda a, b: jnp.where(ok, a, b), y1, s.y)
        fs = jtu.tree_map(lambda a, b: jnp.where(ok, a, b), f1, s.f0)

        def put(buf, val):
            old = buf[s.index]
            return buf.at[s.index].set(jnp.where(save, val, old))

        ys = jtu.tree_map(put, s.ys, y1)
        return AdaptiveState(
            t=t,
            y=y,
            h=h_new,
            f0=fs,
            e_prev=jnp.where(ok, jnp.maximum(e, 1e-4), s.e_prev),
            index=jnp.where(save, s.index + 1, s.index),
            ys=ys,
            accepted=s.accepted + ok,
            rejected=s.rejected + (~ok),
        )

    def step(s, _):
        done = s.index > m
        return jax.lax.cond(done, lambda s: s, attempt, s), None

    final, _ = rollout(step, state, length=max_steps, grad=grad)
    return final.ys, final.index > m, final.accepted, final.rejected
