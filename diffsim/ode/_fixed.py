"""Fixed-step integration: a solver step run by `diffsim.rollout`.

Each interval [ts[i], ts[i+1]] is split into `n` equal steps. The step carries an
integer step counter next to the state, so step times are t0 + k h without a per-step
array of times (no O(T) buffer), and only the states at `ts` are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._checks import concrete
from .._custom_types import Array, ArrayLike, Float, PyTree, RealScalarLike
from .._rollout import AbstractGradient, Reversible, rollout
from ._base import AbstractReversibleSolver, AbstractSolver, VectorField


def _interval_step(solver, f, args, t0, h):
    def step(state, _):
        k, y = state
        t = t0 + k * h
        return (k + 1, solver.step(f, t, y, args, h)), None

    return step


def _interval_inverse(inverse, t0, h):
    # `inverse(y_next, (t, dt)) -> y` undoes the step taken from t with size dt.
    def inv(state, _):
        k, y_next = state
        k = k - 1
        return (k, inverse(y_next, (t0 + k * h, h)))

    return inv


def _inner_grad(grad, t0, h):
    if isinstance(grad, Reversible):
        return Reversible(_interval_inverse(grad.inverse, t0, h))
    return grad


def _one_interval(
    solver: AbstractSolver,
    f: VectorField,
    args: Any,
    grad: AbstractGradient,
    y: PyTree,
    t0: RealScalarLike,
    h: RealScalarLike,
    n: int,
) -> PyTree:
    step = _interval_step(solver, f, args, t0, h)
    state0 = (jnp.zeros((), jnp.int32), y)
    (_, y1), _ = rollout(step, state0, length=n, grad=_inner_grad(grad, t0, h))
    return y1


def integrate_fixed(
    solver: AbstractSolver,
    f: VectorField,
    y0: PyTree,
    ts: Float[Array, " m"],
    args: Any,
    n: int,
    grad: AbstractGradient,
) -> PyTree:
    """States at `ts` (leading axis len(ts)) with `n` equal steps per interval.

    One interval: a rollout of n steps. Many intervals: an outer scan over intervals,
    each a rollout of n steps with `grad`; the outer scan stores only what the inner
    strategy keeps (states at ts for `Reversible`, every state for `DiscreteAdjoint`),
    so every strategy keeps its memory and cost per step. With n = 1 the strategy runs
    over the intervals directly.
    """
    m = ts.shape[0] - 1
    t0s = ts[:-1]
    hs = (ts[1:] - ts[:-1]) / n
    if m == 1:
        y1 = _one_interval(solver, f, args, grad, y0, t0s[0], hs[0], n)
        return jtu.tree_map(lambda a, b: jnp.stack([a, b]), y0, y1)
    if n == 1:

        def step(y, x):
            t, h = x
            y1 = solver.step(f, t, y, args, h)
            return y1, y1

        _, ys = rollout(step, y0, (t0s, hs), grad=grad)
    else:

        def body(y, x):
            t0, h = x
            y1 = _one_interval(solver, f, args, grad, y, t0, h, n)
            return y1, y1

        _, ys = jax.lax.scan(body, y0, (t0s, hs))
    return jtu.tree_map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)


_MAX_STEPS = 1e9


def steps_per_interval(
    ts: ArrayLike, dt: ArrayLike | None, n_steps: int | None, name: str = "solve"
) -> int:
    """The static number of steps per interval from `dt` (needs concrete ts, dt) or `n_steps`."""
    if n_steps is not None:
        if dt is not None:
            raise ValueError(
                f"{name}: pass dt or n_steps, not both (got dt={dt}, n_steps={n_steps})"
            )
        if not isinstance(n_steps, int) or n_steps < 1:
            raise ValueError(f"{name}: n_steps must be an int >= 1, got {n_steps!r}")
        return n_steps
    ts_np, dt_np = concrete(ts), concrete(dt)
    if ts_np is None or dt_np is None:
        raise ValueError(
            f"{name}: with dt= the number of steps is fixed at trace time, so ts and dt must "
            "be concrete (numpy arrays or constants, not traced); under jit pass "
            "n_steps= (the number of steps per interval between consecutive ts) instead"
        )
    if dt_np.ndim != 0:
        raise ValueError(f"{name}: dt must be a scalar, got shape {dt_np.shape}")
    dt = float(dt_np)
    if not (dt > 0 and np.isfinite(dt)):
        raise ValueError(f"{name}: dt must be finite and > 0, got dt={dt}")
    span = float(np.max(np.diff(ts_np.astype(np.float64))))
    # A relative slack so that an interval that is an integer multiple of dt up to
    # round-off is not split into one extra step.
    n = float(np.ceil(span / dt * (1 - 1e-12)))
    total = n * (len(ts_np) - 1)
    if not total <= _MAX_STEPS:
        raise ValueError(
            f"{name}: dt={dt:g} needs {n:.3g} steps per interval ({total:.3g} in all, more than "
            f"{_MAX_STEPS:.0e}); use a larger dt"
        )
    return max(1, int(n))


def make_inverse(solver: AbstractReversibleSolver, f: VectorField, args: Any) -> Callable:
    """`inverse(y_next, (t, dt)) -> y` from a reversible solver's `inverse_step`."""
    return lambda y_next, x: solver.inverse_step(f, x[0], y_next, args, x[1])
