"""Iterative LQR: Gauss-Newton trajectory optimisation with a Riccati backward pass.

Each iteration linearises the model and takes second-order expansions of the costs
along the current trajectory, solves the resulting time-varying LQR problem backwards
(Levenberg-Marquardt regularisation mu I on Q_uu), and runs the closed-loop forward
pass u = u_bar + alpha k + K (x - x_bar) for a batch of step sizes alpha (a line search
with an Armijo test on the expected reduction).

The result is differentiable with respect to `x0`, the model's parameters and the
cost's closed-over arrays by **implicit differentiation** (`jax.lax.custom_root`): at a
local optimum dJ/dU = 0, so dU*/dtheta = -(d^2J/dU^2)^{-1} d^2J/dU dtheta. The
Hessian is formed densely (T m x T m), only when a derivative is asked for.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from .._checks import check_finite, concrete
from .._custom_types import Array, Float, Int, Scalar
from .._results import result_repr
from ._costs import Cost, trajectory_cost
from ._discrete import trajectory

_ALPHAS = tuple(0.5**i for i in range(10))


class ILQRResult(NamedTuple):
    """What `ilqr` gives: the optimised controls, their trajectory and cost, the feedback
    gains, and how the iteration ended. Printing it shows shapes and scalars, not arrays.
    """

    __repr__ = result_repr

    us: Float[Array, "T m"]
    """The optimised controls (differentiable, implicit function theorem)."""
    xs: Float[Array, "T1 n"]
    """Their trajectory (differentiable)."""
    cost: Scalar
    """Their total cost (differentiable)."""
    gains: Float[Array, "T m n"]
    """Feedback gains K_t of the last successful backward pass, taken about the trajectory
    entering the last iteration (u = u_t + K_t (x - x_t)); with `max_iter=1`, about `us0`."""
    iterations: Int[Array, ""]
    """How many iterations ran (at most `max_iter`)."""
    converged: Array
    """True when the expected or achieved reduction fell below `tol`; False when `max_iter`
    ran out first (the result may still be good: compare `history`)."""
    history: Float[Array, " iterations"]
    """The cost after each iteration (entry 0: the initial guess; held after the end)."""


def _expansions(model, cost, xs, us, ts):
    A, B = jax.vmap(jax.jacfwd(model, argnums=(0, 1)))(xs[:-1], us)
    lx, lu = jax.vmap(jax.grad(cost.running, argnums=(0, 1)))(xs[:-1], us, ts)
    (lxx, lxu), (lux, luu) = jax.vmap(jax.hessian(cost.running, argnums=(0, 1)))(xs[:-1], us, ts)
    del lxu
    Vx = jax.grad(cost.terminal)(xs[-1])
    Vxx = jax.hessian(cost.terminal)(xs[-1])
    return (A, B, lx, lu, lxx, lux, luu), (Vx, Vxx)


def _backward(expansions, terminal, mu):
    m = expansions[1].shape[-1]

    def body(carry, d):
        Vx, Vxx, ok = carry
        A, B, lx, lu, lxx, lux, luu = d
        Qx, Qu = lx + A.T @ Vx, lu + B.T @ Vx
        Qxx, Quu, Qux = lxx + A.T @ Vxx @ A, luu + B.T @ Vxx @ B, lux + B.T @ Vxx @ A
        L = jnp.linalg.cholesky(Quu + mu * jnp.eye(m))
        ok = ok & jnp.all(jnp.isfinite(L))
        kK = -jsl.cho_solve((L, True), jnp.concatenate([Qu[:, None], Qux], axis=1))
        k, K = kK[:, 0], kK[:, 1:]
        Vx = Qx + K.T @ Quu @ k + K.T @ Qu + Qux.T @ k
        Vxx = Qxx + K.T @ Quu @ K + K.T @ Qux + Qux.T @ K
        return (Vx, (Vxx + Vxx.T) / 2, ok), (k, K, k @ Qu, 0.5 * k @ Quu @ k)

    Vx, Vxx = terminal
    (_, _, ok), (ks, Ks, dV1, dV2) = jax.lax.scan(
        body, (Vx, Vxx, jnp.array(True)), expansions, reverse=True
    )
    return ok, ks, Ks, jnp.sum(dV1), jnp.sum(dV2)


def _forward(model, cost, x0, xs, us, ks, Ks, ts, alpha):
    def step(x, inp):
        xb, ub, k, K, t = inp
        u = ub + alpha * k + K @ (x - xb)
        return model(x, u), (x, u, cost.running(x, u, t))

    x_T, (xs_new, us_new, ls) = jax.lax.scan(step, x0, (xs[:-1], us, ks, Ks, ts))
    J = jnp.sum(ls) + cost.terminal(x_T)
    return jnp.concatenate([xs_new, x_T[None]]), us_new, jnp.where(jnp.isfinite(J), J, jnp.inf)


def _solve(model, cost, x0, us0, ts, max_iter, tol, reg, reg_factor, reg_max, alphas):
    alphas = jnp.asarray(alphas, dtype=us0.dtype)
    xs0 = trajectory(model, x0, us0)
    J0 = trajectory_cost(model, cost, x0, us0, t0=ts[0])
    n, m = xs0.shape[1], us0.shape[1]
    history = jnp.full((max_iter + 1,), J0)
    K0 = jnp.zeros((us0.shape[0], m, n), us0.dtype)
    init = (
        us0,
        xs0,
        J0,
        K0,
        jnp.asarray(reg, us0.dtype),
        jnp.array(0),
        jnp.array(False),
        jnp.array(False),
        history,
    )

    def cond(s):
        _, _, _, _, _, it, done, _, _ = s
        return (it < max_iter) & ~done

    def body(s):
        us, xs, J, K_old, mu, it, _, _, hist = s
        exp, term = _expansions(model, cost, xs, us, ts)
        ok, ks, Ks, dV1, dV2 = _backward(exp, term, mu)
        expected = -(alphas * dV1 + alphas**2 * dV2)
        small = ok & (expected[0] < tol * (1.0 + jnp.abs(J)))
        cand_xs, cand_us, cand_J = jax.vmap(
            lambda a: _forward(model, cost, x0, xs, us, ks, Ks, ts, a)
        )(alphas)
        accept = ok & (J - cand_J > 1e-4 * expected) & (cand_J < J)
        any_ok = jnp.any(accept)
        i = jnp.argmax(accept)
        J_new = jnp.where(any_ok, cand_J[i], J)
        improved_little = any_ok & (J - J_new < tol * (1.0 + jnp.abs(J)))
        converged = small | improved_little
        us = jnp.where(any_ok, cand_us[i], us)
        xs = jnp.where(any_ok, cand_xs[i], xs)
        K_keep = jnp.where(ok, Ks, K_old)
        mu = jnp.where(any_ok, mu / reg_factor, jnp.maximum(mu * reg_factor, 1e-6))
        mu = jnp.where(mu < 1e-12, 0.0, mu)
        failed = mu > reg_max
        hist = hist.at[it + 1].set(J_new)
        return (us, xs, J_new, K_keep, mu, it + 1, converged | failed, converged, hist)

    us, xs, J, K, _, it, _, converged, hist = jax.lax.while_loop(cond, body, init)
    hist = jnp.where(jnp.arange(max_iter + 1) <= it, hist, J)
    # Aux outputs of custom_root must be inexact (its JVP rule gives them float tangents).
    flags = jnp.stack([it, converged]).astype(us.dtype)
    return us, (xs, J, K, flags, hist)


def _dense_tangent_solve(g, y):
    # g is the linear map v -> (d^2 J / dU^2) v at the optimum; T m is small for control.
    size = y.size
    H = jax.jacfwd(g)(y).reshape(size, size)
    return jnp.linalg.solve(H, y.reshape(size)).reshape(y.shape)


def ilqr(
    model,
    cost: Cost,
    x0: Float[Array, " n"],
    us0: Float[Array, "T m"],
    *,
    max_iter: int = 100,
    tol: float = 1e-9,
    reg: float = 1e-6,
    reg_factor: float = 10.0,
    reg_max: float = 1e10,
    alphas: tuple[float, ...] = _ALPHAS,
    t0=0,
    throw: bool = False,
) -> ILQRResult:
    """Gives the locally optimal controls of a trajectory cost by iterative LQR.

    The solver is compiled once per problem (an `eqx.filter_jit` inside), so call it as
    it is: wrapping it in your own `jit` adds nothing, and a compiled program without
    host callbacks is kept by JAX's persistent compilation cache (the command line's).

    **Arguments:**

    - `model`: a discrete model `model(x, u) -> x_next` (e.g. `Discretised(CartPole(), 0.05)`).
    - `cost`: a `Cost(running, terminal)`; J = sum_t l(x_t, u_t, t0 + t) + l_T(x_T).
    - `x0`: initial state `(n,)`; `us0`: initial guess `(T, m)`.
    - `max_iter`: iteration cap (rejected line searches count).
    - `tol`: stop when the expected or the achieved reduction is below `tol (1 + |J|)`.
    - `reg`: initial Levenberg-Marquardt regularisation of Q_uu (>= 0; 0 gives the exact
      LQR step on a linear-quadratic problem). Divided by `reg_factor` after an accepted
      step, multiplied after a rejected one; the solver gives up above `reg_max`.
    - `alphas`: line-search step sizes, largest first (tried in parallel).
    - `t0`: the time index of the first step (time-varying costs, MPC).
    - `throw`: raise if not converged; else read `converged`.

    **Returns:** an `ILQRResult`; `us`, `xs` and `cost` are differentiable with respect
    to `x0`, the model's parameters and the cost's arrays (implicit differentiation).

    **Raises:** `ValueError` for bad shapes or settings, and for a NaN or inf in `x0` or
    `us0` when they are concrete (checked before the compiled solver runs). With `throw`,
    `eqx.EquinoxRuntimeError` ("ilqr: did not converge ...") when `max_iter` ran out,
    raised on the host after the solve. Inside your own `jit`, `vmap` or `grad` (traced
    `x0`, `us0` or result), both checks are `eqx.error_if`, as before: such a program
    contains a host callback, which JAX's persistent cache does not keep.

    **Example:**

    ```python
    res = ilqr(Discretised(CartPole(), 0.05), cost, x0, jnp.zeros((80, 1)))
    ```
    """
    if jnp.ndim(us0) != 2 or us0.shape[0] < 1:
        raise ValueError(f"ilqr: us0 must have shape (T, m) with T >= 1, got {jnp.shape(us0)}")
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError(f"ilqr: max_iter must be an int >= 1, got {max_iter!r}")
    if not reg >= 0:
        raise ValueError(f"ilqr: reg must be >= 0, got {reg}")
    if not reg_factor > 1:
        raise ValueError(f"ilqr: reg_factor must be > 1, got {reg_factor}")
    if len(alphas) < 1 or any(not (0 < a <= 1) for a in alphas):
        raise ValueError(f"ilqr: alphas must be in (0, 1], got {alphas}")
    # Concrete inputs are checked here, on the host (ValueError); traced ones by
    # eqx.error_if in the caller's program. The compiled solver itself has no checks.
    x0 = check_finite(x0, "ilqr: x0")
    us0 = check_finite(us0, "ilqr: us0")
    settings = (max_iter, float(tol), float(reg), float(reg_factor), float(reg_max))
    res = _ilqr_compiled(model, cost, x0, us0, t0, settings, tuple(float(a) for a in alphas))
    if throw:
        res = _raise_unconverged(res)
    return res


_UNCONVERGED = "ilqr: did not converge within max_iter iterations"


def _raise_unconverged(res: ILQRResult) -> ILQRResult:
    flag = concrete(res.converged)
    if flag is not None:  # a concrete result: checked on the host, after the solve
        if not bool(flag):
            raise eqx.EquinoxRuntimeError(_UNCONVERGED)
        return res
    us, xs, J = eqx.error_if((res.us, res.xs, res.cost), ~res.converged, _UNCONVERGED)
    return res._replace(us=us, xs=xs, cost=J)


@eqx.filter_jit
def _ilqr_compiled(model, cost, x0, us0, t0, settings, alphas) -> ILQRResult:
    return _ilqr_unchecked(model, cost, x0, us0, t0, settings, alphas)


def _ilqr_unchecked(model, cost, x0, us0, t0, settings, alphas) -> ILQRResult:
    """iLQR without input checks and without host callbacks (MPC calls this under jit)."""
    max_iter, tol, reg, reg_factor, reg_max = settings
    ts = t0 + jnp.arange(us0.shape[0])

    def gradient(us):
        return jax.grad(lambda u: trajectory_cost(model, cost, x0, u, t0=t0))(us)

    def solve(_, guess):
        m, x, g = jax.tree.map(
            lambda a: jax.lax.stop_gradient(a) if eqx.is_array(a) else a, (model, x0, guess)
        )
        return _solve(m, cost, x, g, ts, max_iter, tol, reg, reg_factor, reg_max, alphas)

    us, (_, _, K, flags, hist) = jax.lax.custom_root(
        gradient, us0, solve, _dense_tangent_solve, has_aux=True
    )
    it, converged = flags[0].astype(jnp.int32), flags[1] > 0.5
    xs = trajectory(model, x0, us)
    J = trajectory_cost(model, cost, x0, us, t0=t0)
    return ILQRResult(us, xs, J, K, it, converged, hist)
