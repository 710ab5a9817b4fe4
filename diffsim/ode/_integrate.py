"""Adaptive integration with events, dense output and counts: the loop behind `Solution`.

The same bounded rollout as `_adaptive.py` (exactly `max_steps` attempts, a pass-through
once done) on a flat state vector, for the explicit `Dopri5` and the implicit `Kvaerno5`.
After each accepted step the event condition is compared at both ends of the step; on a
crossing the event time is the root, on the step's interpolating polynomial, of
g(t0 + theta h, p(theta)), found by Illinois regula falsi and differentiated by the
implicit function theorem (`implicit_root`). The solve then restarts at the event
time from the state after the jump (or stops), so the gradient through an event is that
of the event time (dt_e/dtheta = -(dg/dtheta) / (dg/dt)) and of the jump itself. A
rejected step never fires an event: only an accepted step's end is tested.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._custom_types import Array, Float, Int, PyTree, Scalar
from .._rollout import AbstractGradient, rollout
from ._adaptive import PIController, initial_step
from ._base import AbstractAdaptiveRK
from ._explicit import Dopri5
from ._implicit import AbstractImplicitSolver, hermite_coeffs
from ._root import implicit_root

# Dopri5's 4th-order continuous extension (Hairer, Norsett, Wanner; Shampine 1986):
# y(t0 + theta h) = y0 + h K^T P [theta, theta^2, theta^3, theta^4].
_DOPRI5_P = np.array(
    [
        [1, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
        [0, 0, 0, 0],
        [0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
        [0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
        [
            0,
            127303824393 / 49829197408,
            -318862633887 / 49829197408,
            701980252875 / 199316789632,
        ],
        [0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
        [0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
    ]
)


class Event(eqx.Module):
    """Where `condition(t, y, args)` crosses zero: stop, or apply `jump` and continue.

    **Arguments:**

    - `condition`: `(t, y, args) -> scalar`; an event happens where it changes sign
      across an accepted step.
    - `jump`: `(t, y, args) -> y_new`, the state reset after the event (a ball's
      velocity reversed, a neuron's voltage reset); `None` ends the solve at the event.
    - `direction`: `-1` only downward crossings (+ to -), `+1` only upward, `0` both.
    - `max_events`: the capacity of the record of event times and states.

    At most one crossing per step is seen: a condition that crosses twice within one
    accepted step is missed (tighten rtol/atol when events come close together).

    **Example:** `Event(lambda t, y, a: y[0], jump=lambda t, y, a: y * jnp.array([1, -a]),
    direction=-1)` is a ball bouncing at height 0 with restitution `a`.
    """

    condition: Callable
    jump: Callable | None = None
    direction: int = eqx.field(default=0, static=True)
    max_events: int = eqx.field(default=64, static=True)

    def __check_init__(self):
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"Event: direction must be -1, 0 or 1, got {self.direction!r}")
        if not (isinstance(self.max_events, int) and self.max_events >= 1):
            raise ValueError(f"Event: max_events must be an int >= 1, got {self.max_events!r}")


class DenseInterpolation(eqx.Module):
    """The continuous solution: one polynomial per accepted step, evaluable anywhere.

    Dopri5 steps carry its 4th-order continuous extension, implicit steps a cubic Hermite
    polynomial. At an event time the piece after the jump is returned.
    """

    t0s: Float[Array, " s"]
    hs: Float[Array, " s"]
    coeffs: Float[Array, "s 5 n"]
    n_steps: Int[Array, ""]
    unravel: Callable = eqx.field(static=True)

    def evaluate(self, t) -> PyTree:
        """Gives y(t) for a scalar time `t` inside the solved span (vmap for many)."""
        t = jnp.asarray(t, self.t0s.dtype)
        i = jnp.clip(jnp.searchsorted(self.t0s, t, side="right") - 1, 0, self.n_steps - 1)
        theta = (t - self.t0s[i]) / self.hs[i]
        return self.unravel(_poly(self.coeffs[i], theta))


class Solution(eqx.Module):
    """What `solve(..., event=..., dense=True or solution=True)` gives.

    **Fields:** `ts` (m,); `ys` the states at `ts` (leading axis m; NaN after a
    terminating event); `t_events` (max_events,) and `y_events` (states just before each
    jump), NaN past `n_events`; `terminated`; `t_final`, `y_final` (the last state: at
    `ts[-1]` or at the terminating event); `accepted`, `rejected` steps; `nfev` evaluations
    of f (Jacobians apart), `njev` Jacobians; `t_steps` the accepted step times (NaN
    padded, length max_steps + 1); `interpolation` a `DenseInterpolation` or `None`.
    """

    ts: Float[Array, " m"]
    ys: PyTree
    t_events: Float[Array, " e"] | None
    y_events: PyTree
    n_events: Int[Array, ""]
    terminated: Array
    t_final: Scalar
    y_final: PyTree
    accepted: Int[Array, ""]
    rejected: Int[Array, ""]
    nfev: Int[Array, ""]
    njev: Int[Array, ""]
    t_steps: Float[Array, " s"]
    interpolation: DenseInterpolation | None

    def evaluate(self, t) -> PyTree:
        """Gives y(t) from the dense interpolant (needs `solve(..., dense=True)`).

        **Raises:** `ValueError` if the solve was not dense.
        """
        if self.interpolation is None:
            raise ValueError("Solution.evaluate: solve with dense=True to interpolate")
        return self.interpolation.evaluate(t)


def _poly(c, theta):
    out = c[4]
    for p in (3, 2, 1, 0):
        out = out * theta + c[p]
    return out


def _explicit_attempt(solver: AbstractAdaptiveRK, f, t, u, args, h, f0):
    tab = solver.tableau
    ks = solver.stages(f, t, u, args, h, k0=f0)
    u1 = u + h * sum(b * k for b, k in zip(tab.b, ks, strict=True) if b != 0.0)
    assert tab.b_error is not None
    err = h * sum(b * k for b, k in zip(tab.b_error, ks, strict=True) if b != 0.0)
    nfev = tab.stages - 1
    if tab.fsal:
        f1 = ks[-1]
    else:
        f1 = f(t + h, u1, args)
        nfev += 1
    if isinstance(solver, Dopri5):
        q = h * (jnp.stack(ks).T @ jnp.asarray(_DOPRI5_P, u.dtype))  # (n, 4)
        coeffs = jnp.concatenate([u[None], q.T], axis=0)
    else:
        coeffs = hermite_coeffs(u, u1, f0, f1, h)
    return u1, err, f1, coeffs, jnp.asarray(True), jnp.asarray(nfev, jnp.int32)


def _illinois(residual, z0, data):
    """Regula falsi with the Illinois modification on theta in the bracket `data[:2]`.

    `data[2]` is the sign the condition has just after the left end (it decides a left
    value that is zero up to round-off, as right after a jump onto the surface)."""
    lo, hi, s_left = data
    glo, ghi = residual(lo), residual(hi)
    lo0, wrong = lo, jnp.sign(glo) != s_left
    glo = jnp.where(wrong, s_left * jnp.inf, glo)

    def cond(c):
        lo, hi, glo, ghi, it, _ = c
        return (it < 100) & (hi - lo > 4 * jnp.finfo(z0.dtype).eps) & (glo != 0) & (ghi != 0)

    def body(c):
        lo, hi, glo, ghi, it, side = c
        x = jnp.clip((lo * ghi - hi * glo) / (ghi - glo), lo, hi)
        # Bisect while the left end is still a round-off zero of the wrong sign.
        secant = jnp.isfinite(x) & (x > lo) & (x < hi) & ~(wrong & (lo == lo0))
        x = jnp.where(secant, x, 0.5 * (lo + hi))
        gx = residual(x)
        left = jnp.sign(gx) == jnp.sign(glo)
        # Illinois: halve the stale end's value when the same end is kept twice.
        new_lo = jnp.where(left, x, lo)
        new_hi = jnp.where(left, hi, x)
        new_glo = jnp.where(left, gx, jnp.where(side == -1, 0.5 * glo, glo))
        new_ghi = jnp.where(left, jnp.where(side == 1, 0.5 * ghi, ghi), gx)
        side = jnp.where(left, 1, -1).astype(jnp.int32)
        return new_lo, new_hi, new_glo, new_ghi, it + 1, side

    init = (lo, hi, glo, ghi, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    lo, hi, glo, ghi, it, _ = jax.lax.while_loop(cond, body, init)
    theta = jnp.where(
        glo == 0, lo, jnp.where(ghi == 0, hi, jnp.where(jnp.abs(glo) < jnp.abs(ghi), lo, hi))
    )
    return theta, it


# The condition is sampled at this many points of each accepted step, so that a crossing
# and back within one step is still seen (down to 1/_SAMPLES of the step).
_SAMPLES = 8


class _State(eqx.Module):
    t: Array
    u: Array
    h: Array
    f0: Array
    g0: Array  # the sign of the event condition just after t
    e_prev: Array
    index: Array
    us: Array
    accepted: Array
    rejected: Array
    nfev: Array
    njev: Array
    n_events: Array
    t_events: Array
    u_events: Array
    terminated: Array
    t0s: Array
    hs: Array
    coeffs: Array | None


def _rms(x):
    return jnp.sqrt(jnp.mean(x**2))


def integrate_solution(
    solver,
    f: Callable,
    y0: PyTree,
    ts: Float[Array, " m"],
    args: Any,
    *,
    rtol,
    atol,
    max_steps: int,
    dt0,
    controller: PIController,
    grad: AbstractGradient,
    event: Event | None,
    dense: bool,
) -> Solution:
    """Integrates adaptively with events and dense output; gives a `Solution`."""
    u0, unravel = ravel_pytree(y0)
    n = u0.shape[0]
    m = ts.shape[0] - 1
    dtype = u0.dtype

    def flat(t, v, a):
        return ravel_pytree(f(t, unravel(v), a))[0]

    def cond_fn(t, v):
        assert event is not None
        return jnp.asarray(event.condition(t, unravel(v), args), dtype)

    def side_sign(t, v, fv, h):
        """The sign of the condition just after (t, v): its own sign, or if it is zero up
        to round-off (a jump onto the surface), the sign of its time derivative."""
        g, gdot = jax.jvp(lambda tt, vv: cond_fn(tt, vv), (t, v), (jnp.ones_like(t), fv))
        flat_zero = jnp.abs(g) <= 1e-9 * jnp.abs(gdot) * h
        return jax.lax.stop_gradient(jnp.where(flat_zero, jnp.sign(gdot), jnp.sign(g)))

    implicit = isinstance(solver, AbstractImplicitSolver)
    t0 = ts[0]
    f0 = flat(t0, u0, args)
    if dt0 is None:
        h = initial_step(solver, flat, t0, u0, args, f0, rtol, atol, ts[1] - ts[0])
    else:
        h = jnp.asarray(dt0, ts.dtype)
    n_ev = event.max_events if event is not None else 1
    state = _State(
        t=jnp.asarray(t0),
        u=u0,
        h=jax.lax.stop_gradient(jnp.asarray(h, ts.dtype)),
        f0=f0,
        g0=side_sign(t0, u0, f0, ts[-1] - t0) if event is not None else jnp.zeros((), dtype),
        e_prev=jnp.ones((), dtype),
        index=jnp.ones((), jnp.int32),
        us=jnp.full((m + 1, n), jnp.nan, dtype).at[0].set(u0),
        accepted=jnp.zeros((), jnp.int32),
        rejected=jnp.zeros((), jnp.int32),
        nfev=jnp.asarray(2 if dt0 is None else 1, jnp.int32),
        njev=jnp.zeros((), jnp.int32),
        n_events=jnp.zeros((), jnp.int32),
        t_events=jnp.full((n_ev,), jnp.nan, ts.dtype),
        u_events=jnp.full((n_ev, n), jnp.nan, dtype),
        terminated=jnp.asarray(False),
        t0s=jnp.full((max_steps + 1,), jnp.inf, ts.dtype).at[0].set(t0),
        hs=jnp.ones((max_steps,), ts.dtype),
        coeffs=jnp.zeros((max_steps, 5, n), dtype) if dense else None,
    )
    k = solver.error_order + 1

    def attempt(s: _State) -> _State:
        t_next = ts[s.index]
        gap = t_next - s.t
        hits = s.h >= gap
        h = jnp.where(hits, gap, s.h)
        empty = h <= 0  # an event exactly on a time of ts: save it without a step
        h_safe = jnp.where(empty, jnp.ones_like(h), h)
        scale = atol + rtol * jnp.abs(jax.lax.stop_gradient(s.u))
        if implicit:
            u1, err, f1, coeffs, conv, nf = solver.attempt(
                flat, s.t, s.u, args, h_safe, s.f0, scale
            )
        else:
            u1, err, f1, coeffs, conv, nf = _explicit_attempt(
                solver, flat, s.t, s.u, args, h_safe, s.f0
            )
        u1 = jnp.where(empty, s.u, u1)
        f1 = jnp.where(empty, s.f0, f1)
        scaled = err / (atol + rtol * jnp.maximum(jnp.abs(s.u), jnp.abs(u1)))
        e = jax.lax.stop_gradient(jnp.where(empty, 0.0, _rms(scaled)))
        ok = conv & (e <= 1.0)
        fac = jnp.where(conv, controller.factor(e, s.e_prev, k), controller.factor_min)
        h_new = jax.lax.stop_gradient(jnp.where(empty, s.h, h * fac))
        t_end = jnp.where(hits, t_next, s.t + h)

        fire = jnp.asarray(False)
        t_new, u_new, f_new, g_new = t_end, u1, f1, s.g0
        t_ev, u_ev = s.t, s.u
        extra = jnp.zeros((), jnp.int32)
        if event is not None:
            jump = event.jump
            g1 = cond_fn(t_end, u1)
            thetas = jnp.arange(1, _SAMPLES + 1, dtype=dtype) / _SAMPLES
            rs = jax.vmap(lambda th: cond_fn(s.t + th * h_safe, _poly(coeffs, th)))(thetas[:-1])
            rs = jax.lax.stop_gradient(jnp.concatenate([rs, g1[None]]))
            prev = jnp.concatenate([s.g0[None], jnp.sign(rs[:-1])])
            up = (prev < 0) & (rs >= 0)
            down = (prev > 0) & (rs <= 0)
            crossing = {-1: down, 1: up, 0: up | down}[event.direction]
            fire = ok & jnp.any(crossing) & ~empty
            js = jnp.argmax(crossing)
            bracket = (
                jnp.where(js == 0, 0.0, thetas[js - 1]).astype(dtype),
                thetas[js],
                jnp.where(js == 0, s.g0, prev[js]),
            )

            def on_event(_):
                def residual(theta):
                    return cond_fn(s.t + theta * h_safe, _poly(coeffs, theta))

                theta, _ = implicit_root(residual, jnp.asarray(0.5, dtype), _illinois, bracket)
                te = s.t + theta * h_safe
                ue = _poly(coeffs, theta)
                if jump is None:
                    return te, ue, ue, f1, jnp.sign(g1)
                ua = ravel_pytree(jump(te, unravel(ue), args))[0].astype(dtype)
                fa = flat(te, ua, args)
                return te, ue, ua, fa, side_sign(te, ua, fa, h_safe)

            def no_event(_):
                return t_end, u1, u1, f1, jnp.sign(g1)

            t_ev, u_ev, u_new, f_new, g_new = jax.lax.cond(fire, on_event, no_event, None)
            t_new = t_ev
            extra = (fire & (event.jump is not None)).astype(jnp.int32)

        save = ok & hits & ~fire
        keep = lambda new, old: jnp.where(ok, new, old)
        us = s.us.at[s.index].set(jnp.where(save, u1, s.us[s.index]))
        j = jnp.minimum(s.n_events, n_ev - 1)
        record = fire & (s.n_events < n_ev)
        slot = jnp.minimum(s.accepted, max_steps - 1)
        coeff_buf = s.coeffs
        if dense:
            assert coeff_buf is not None
            coeff_buf = coeff_buf.at[slot].set(jnp.where(ok & ~empty, coeffs, coeff_buf[slot]))
        step_taken = ok & ~empty
        return _State(
            t=keep(t_new, s.t),
            u=keep(u_new, s.u),
            h=h_new,
            f0=keep(f_new, s.f0),
            g0=keep(g_new, s.g0),
            e_prev=jnp.where(ok, jnp.maximum(e, 1e-4), s.e_prev),
            index=jnp.where(save, s.index + 1, s.index),
            us=us,
            accepted=s.accepted + step_taken,
            rejected=s.rejected + (~ok),
            nfev=s.nfev + nf + extra,
            njev=s.njev + jnp.asarray(implicit, jnp.int32),
            n_events=s.n_events + fire,
            t_events=s.t_events.at[j].set(jnp.where(record, t_ev, s.t_events[j])),
            u_events=s.u_events.at[j].set(jnp.where(record, u_ev, s.u_events[j])),
            terminated=s.terminated | (fire & (event is not None and event.jump is None)),
            t0s=s.t0s.at[slot + 1].set(jnp.where(step_taken, t_new, s.t0s[slot + 1])),
            hs=s.hs.at[slot].set(jnp.where(step_taken, h_safe, s.hs[slot])),
            coeffs=coeff_buf,
        )

    def step(s, _):
        done = (s.index > m) | s.terminated
        return jax.lax.cond(done, lambda s: s, attempt, s), None

    final, _ = rollout(step, state, length=max_steps, grad=grad)
    interp = None
    if dense:
        assert final.coeffs is not None
        interp = DenseInterpolation(final.t0s[:-1], final.hs, final.coeffs, final.accepted, unravel)
    unravel_rows = jax.vmap(unravel)
    t_steps = jnp.where(jnp.isfinite(final.t0s), final.t0s, jnp.nan)
    return Solution(
        ts=ts,
        ys=unravel_rows(final.us),
        t_events=final.t_events if event is not None else None,
        y_events=unravel_rows(final.u_events) if event is not None else None,
        n_events=final.n_events,
        terminated=final.terminated,
        t_final=final.t,
        y_final=unravel(final.u),
        accepted=final.accepted,
        rejected=final.rejected,
        nfev=final.nfev,
        njev=final.njev,
        t_steps=t_steps,
        interpolation=interp,
    )
