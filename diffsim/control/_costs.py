"""Trajectory costs as plain functions, and the total cost of a control sequence.

A running cost is `l(x, u, t) -> scalar` (t the integer step index); a terminal cost is
`l_T(x) -> scalar`. Build them with the constructors below and add them with
`add_costs`; `Cost(running, terminal)` pairs them. The total cost of controls
u_0..u_{T-1} from x_0 is J = sum_t l(x_t, u_t, t0 + t) + l_T(x_T).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Scalar
from .._rollout import BPTT, AbstractGradient, rollout

RunningCost = Callable[[Array, Array, Array], Scalar]
TerminalCost = Callable[[Array], Scalar]


class Cost(eqx.Module):
    """A running cost `running(x, u, t)` and a terminal cost `terminal(x)`."""

    running: RunningCost
    terminal: TerminalCost


def _reference(ref, t):
    """A constant reference `(n,)`, or a time-varying one `(T, n)` read at step t (held)."""
    if ref is None:
        return None
    ref = jnp.asarray(ref)
    if ref.ndim == 1:
        return ref
    return ref[jnp.clip(t, 0, ref.shape[0] - 1)]


def quadratic(Q, R, x_ref=None, u_ref=None) -> RunningCost:
    """Gives the tracking cost (x - x_ref)^T Q (x - x_ref) + (u - u_ref)^T R (u - u_ref).

    **Arguments:**

    - `Q`: `(n, n)` state weight; `R`: `(m, m)` control weight.
    - `x_ref`, `u_ref`: `None` (zero), a constant `(n,)` / `(m,)`, or a time-varying
      reference `(T, n)` / `(T, m)` read at the step index (held after its end).

    **Raises:** `ValueError` if `Q` or `R` is not square.
    """
    Q, R = jnp.asarray(Q, float), jnp.asarray(R, float)
    for name, W in (("Q", Q), ("R", R)):
        if W.ndim != 2 or W.shape[0] != W.shape[1]:
            raise ValueError(f"quadratic: {name} must be a square matrix, got shape {W.shape}")

    def running(x, u, t):
        dx = x if x_ref is None else x - _reference(x_ref, t)
        du = u if u_ref is None else u - _reference(u_ref, t)
        return dx @ Q @ dx + du @ R @ du

    return running


def terminal_quadratic(Qf, x_goal=None) -> TerminalCost:
    """Gives the terminal goal cost (x - x_goal)^T Qf (x - x_goal).

    **Raises:** `ValueError` if `Qf` is not square.
    """
    Qf = jnp.asarray(Qf, float)
    if Qf.ndim != 2 or Qf.shape[0] != Qf.shape[1]:
        raise ValueError(f"terminal_quadratic: Qf must be a square matrix, got shape {Qf.shape}")

    def terminal(x):
        dx = x if x_goal is None else x - jnp.asarray(x_goal)
        return dx @ Qf @ dx

    return terminal


def control_effort(weight) -> RunningCost:
    """Gives the control effort cost sum_i weight_i u_i^2 (`weight` scalar or `(m,)`)."""
    weight = jnp.asarray(weight, float)

    def running(x, u, t):
        return jnp.sum(weight * u**2)

    return running


def obstacle(
    center, radius, *, weight=1.0, sharpness=20.0, points=lambda x: x[None, :2]
) -> RunningCost:
    """Gives a smooth penalty for points of the robot entering a disc (or ball) obstacle.

    The penalty is `weight * sum_p softplus(sharpness * (radius - |p - center|)) / sharpness`
    over the points `points(x)` (shape `(k, d)`; the default is the first two states),
    a smooth hinge: about `weight * (radius - distance)` inside, vanishing outside.

    **Raises:** `ValueError` for `radius <= 0` or `sharpness <= 0`.
    """
    if not radius > 0:
        raise ValueError(f"obstacle: radius must be > 0, got {radius}")
    if not sharpness > 0:
        raise ValueError(f"obstacle: sharpness must be > 0, got {sharpness}")
    center = jnp.asarray(center, float)

    def running(x, u, t):
        d = jnp.sqrt(jnp.sum((points(x) - center[None]) ** 2, axis=-1) + 1e-12)
        return weight * jnp.sum(jax.nn.softplus(sharpness * (radius - d))) / sharpness

    return running


def box_penalty(lower, upper, *, weight=1.0, select=lambda x: x) -> RunningCost:
    """Gives a state-constraint penalty weight * |violation|^2 of lower <= select(x) <= upper.

    Zero inside the box, smooth (C^1) at its faces. Use `jnp.inf` for an open side.
    """
    lower, upper = jnp.asarray(lower, float), jnp.asarray(upper, float)

    def running(x, u, t):
        z = select(x)
        return weight * jnp.sum(jax.nn.relu(z - upper) ** 2 + jax.nn.relu(lower - z) ** 2)

    return running


def log_barrier(lower, upper, *, weight=1.0, select=lambda x: x) -> RunningCost:
    """Gives the barrier -weight * sum log(select(x) - lower) + log(upper - select(x)).

    Infinite (NaN-free `inf`) outside the box, so a line search rejects infeasible steps.
    """
    lower, upper = jnp.asarray(lower, float), jnp.asarray(upper, float)

    def running(x, u, t):
        z = select(x)
        a, b = z - lower, upper - z
        ok = (a > 0) & (b > 0)
        safe = jnp.where(ok, jnp.log(jnp.where(ok, a, 1.0)) + jnp.log(jnp.where(ok, b, 1.0)), 0.0)
        return jnp.where(jnp.all(ok), -weight * jnp.sum(safe), jnp.inf)

    return running


def add_costs(*fns: Callable) -> Callable:
    """Gives the sum of running costs (or of terminal costs) as one function."""
    if not fns:
        raise ValueError("add_costs: need at least one cost function")

    def total(*args):
        out = fns[0](*args)
        for f in fns[1:]:
            out = out + f(*args)
        return out

    return total


def trajectory_cost(
    model,
    cost: Cost,
    x0: Float[Array, " n"],
    us: Float[Array, "T m"],
    *,
    grad: AbstractGradient = BPTT(),
    t0=0,
) -> Scalar:
    """Gives J = sum_t l(x_t, u_t, t0 + t) + l_T(x_T) of controls `us` from `x0`.

    The trajectory is one `diffsim.rollout` of the model step, so `jax.grad` of this
    function is backpropagation through time with the strategy `grad`.

    **Example:** `J = trajectory_cost(model, Cost(quadratic(Q, R), terminal_quadratic(Qf)), x0, us)`
    """
    if jnp.ndim(us) != 2:
        raise ValueError(f"trajectory_cost: us must have shape (T, m), got {jnp.shape(us)}")
    ts = t0 + jnp.arange(us.shape[0])

    def step(x, inp):
        u, t = inp
        return model(x, u), cost.running(x, u, t)

    x_T, ls = rollout(step, x0, (us, ts), grad=grad)
    return jnp.sum(ls) + cost.terminal(x_T)
