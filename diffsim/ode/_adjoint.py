"""How `solve` differentiates: one small interface, `AbstractSolveGradient`, that `solve`
calls, with three implementations.

- `PerStep(grad)`: a rollout strategy (`diffsim.BPTT`, `Checkpointed`, `DiscreteAdjoint`,
  `Reversible`, `Truncated`) applied to the solver steps; `solve` wraps a rollout strategy
  in it, so `solve(..., grad=Checkpointed())` works as written.
- `ReversibleSolve()`: `diffsim.Reversible` with the inverse built from the solver.
- `ContinuousAdjoint()`: the adjoint ODE.

The rollout strategies differentiate the discrete solver steps exactly. `ContinuousAdjoint`
instead integrates the adjoint ODE backwards in time (optimise-then-discretise): O(1) memory
in the number of steps, but only an approximation of the gradient of the computed solution,
with an error that shrinks with the step size like the solver's own error."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from .._checks import strong_types
from .._custom_types import Array, Float, PyTree
from .._rollout import AbstractGradient, Reversible
from ._base import AbstractReversibleSolver, AbstractSolver, VectorField
from ._fixed import make_inverse


class AbstractSolveGradient(eqx.Module):
    """How `solve` differentiates a solve. A new strategy is a new subclass.

    `solve` calls `grad.solve(integrate, f, y0, ts, args, solver=..., adaptive=...)`, where
    `integrate(f, y0, ts, args, grad=rollout_strategy)` runs the forward integration with
    every setting fixed and gives the states at `ts`.
    """

    @abc.abstractmethod
    def solve(
        self,
        integrate: Callable,
        f: VectorField,
        y0: PyTree,
        ts: Float[Array, " m"],
        args: Any,
        *,
        solver: AbstractSolver,
        adaptive: bool,
    ) -> PyTree:
        """Gives the states at `ts`, differentiable by this strategy.

        **Raises:** `ValueError` if the strategy cannot be used with this solver or with
        adaptive steps.
        """


class PerStep(AbstractSolveGradient):
    """A rollout strategy (`diffsim.BPTT()`, `Checkpointed()`, ...) applied per solver step.

    `solve(..., grad=Checkpointed())` wraps the strategy in `PerStep` itself.
    """

    grad: AbstractGradient

    def __check_init__(self):
        if not isinstance(self.grad, AbstractGradient):
            raise TypeError(f"PerStep: grad must be a rollout strategy, got {self.grad!r}")

    def solve(
        self,
        integrate: Callable,
        f: VectorField,
        y0: PyTree,
        ts: Float[Array, " m"],
        args: Any,
        *,
        solver: AbstractSolver,
        adaptive: bool,
    ) -> PyTree:
        if adaptive and isinstance(self.grad, Reversible):
            raise ValueError(
                "solve: grad=Reversible() needs fixed steps (dt= or n_steps=); "
                "adaptive steps are not invertible"
            )
        return _run(integrate, f, y0, ts, args, self.grad)


# One compiled program per call outside jit (instead of op-by-op dispatch); inlined
# when `solve` is itself traced.
@eqx.filter_jit
def _run(integrate, f, y0, ts, args, grad):
    return integrate(f, y0, ts, args, grad)


@eqx.filter_jit
def _run_adjoint(integrate, f, y0, ts, args):
    return continuous_adjoint_solve(integrate, f, y0, ts, args)


class ReversibleSolve(AbstractSolveGradient):
    """O(1)-memory exact gradients for a reversible solver (`Leapfrog`, `SymplecticEuler`).

    `solve` builds `diffsim.Reversible` with the inverse taken from the solver's
    `inverse_step`, so nothing but the states at `ts` is stored and the backward pass
    runs the integrator backwards. Exact up to the round-off of the backward run.

    **Example:** `solve(f, (q0, p0), ts, solver=Leapfrog(), dt=0.01, grad=ReversibleSolve())`
    """

    def solve(
        self,
        integrate: Callable,
        f: VectorField,
        y0: PyTree,
        ts: Float[Array, " m"],
        args: Any,
        *,
        solver: AbstractSolver,
        adaptive: bool,
    ) -> PyTree:
        if adaptive:
            raise ValueError(
                "solve: grad=ReversibleSolve() needs fixed steps (dt= or n_steps=); "
                "adaptive steps are not invertible"
            )
        if not isinstance(solver, AbstractReversibleSolver):
            raise ValueError(
                f"solve: grad=ReversibleSolve() needs a reversible solver (Leapfrog(), "
                f"SymplecticEuler()), got solver={type(solver).__name__}()"
            )
        return _run(integrate, f, y0, ts, args, Reversible(make_inverse(solver, f, args)))


class ContinuousAdjoint(AbstractSolveGradient):
    """The continuous adjoint: the augmented ODE integrated backwards in time.

    For a loss L(y(t_0), ..., y(t_M)) the backward pass solves, from t_M down to t_0,

        dy/dt = f(t, y, theta),  da/dt = -a^T df/dy,  dg/dt = -a^T df/dtheta,

    with the same solver and step sizes (or tolerances) as the forward solve, starting
    from the stored y(t_i) and adding dL/dy(t_i) to a at every t_i; then dL/dy0 = a(t_0)
    and dL/dtheta = g(t_0). theta is every floating-point array in `args` and in `f`
    (an `eqx.Module` vector field or arrays closed over).

    Memory O(1) in the number of steps (O(len(ts)) for the saved states); the gradient
    is approximate (its error vanishes at the solver's order as dt -> 0) and is not
    taken with respect to `ts`.
    """

    def solve(
        self,
        integrate: Callable,
        f: VectorField,
        y0: PyTree,
        ts: Float[Array, " m"],
        args: Any,
        *,
        solver: AbstractSolver,
        adaptive: bool,
    ) -> PyTree:
        return _run_adjoint(integrate, f, y0, ts, args)


def continuous_adjoint_solve(
    integrate: Callable, f: VectorField, y0: PyTree, ts: Float[Array, " m"], args: Any
) -> PyTree:
    """States at `ts` with gradients by the continuous adjoint.

    `integrate(f, y0, ts, args)` gives the states at `ts` (leading axis len(ts)); it is
    used forwards and, on the augmented system in reversed time, backwards.
    """
    y0, args = strong_types((y0, args))
    f_cc = strong_types(eqx.filter_closure_convert(f, ts[0], y0, args))
    return _cadj((f_cc, y0, args), ts, integrate)


@eqx.filter_custom_vjp
def _cadj(vjp_arg, ts, integrate):
    f_cc, y0, args = vjp_arg
    return integrate(f_cc, y0, ts, args)


@_cadj.def_fwd
def _cadj_fwd(perturbed, vjp_arg, ts, integrate):
    del perturbed
    f_cc, y0, args = vjp_arg
    ys = integrate(f_cc, y0, ts, args)
    return ys, ys


@_cadj.def_bwd
def _cadj_bwd(ys, g_ys, perturbed, vjp_arg, ts, integrate):
    del perturbed
    f_cc, y0, args = vjp_arg
    params = (f_cc, args)
    p_diff, p_static = eqx.partition(params, eqx.is_inexact_array)
    g_ys = jtu.tree_map(
        lambda g, y: jnp.zeros_like(y) if g is None else g,
        g_ys,
        ys,
        is_leaf=lambda x: x is None,
    )

    def aug(s, state, _):
        # Reversed time s = -t turns the backward solve into a forward one.
        y, a, _ = state
        t = -s

        def field(p, y):
            fc, ar = eqx.combine(p, p_static)
            return fc(t, y, ar)

        dy, vjp = jax.vjp(field, p_diff, y)
        gp_dot, a_dot = vjp(a)
        return (jtu.tree_map(jnp.negative, dy), a_dot, gp_dot)

    def aug_pair(s, state, _):
        # For a separable (q, p) system the augmented system is separable again with
        # Q = (q, a_p, g_V) and P = (p, a_q, g_F), so a symplectic solver can run it.
        (q, ap, gv), (p, aq, gf) = state
        t = -s

        def field(pd, y):
            fc, ar = eqx.combine(pd, p_static)
            return fc(t, y, ar)

        (dq, dp), vjp = jax.vjp(field, p_diff, (q, p))
        gv_dot, (_, ap_dot) = vjp((aq, jtu.tree_map(jnp.zeros_like, dp)))
        gf_dot, (aq_dot, _) = vjp((jtu.tree_map(jnp.zeros_like, dq), ap))
        neg = lambda z: jtu.tree_map(jnp.negative, z)
        return ((neg(dq), ap_dot, gv_dot), (neg(dp), aq_dot, gf_dot))

    pair = isinstance(integrate.solver, AbstractReversibleSolver)

    def body(carry, x):
        a, gp = carry
        y_hi, t_lo, t_hi, g_lo = x
        s_span = jnp.stack([-t_hi, -t_lo])
        if pair:
            (q, p), (aq, ap) = y_hi, a
            half = jtu.tree_map(jnp.zeros_like, gp)
            out = integrate(aug_pair, ((q, ap, half), (p, aq, gp)), s_span, None)
            (_, ap_lo, gv), (_, aq_lo, gf) = jtu.tree_map(lambda z: z[-1], out)
            a_lo, gp_lo = (aq_lo, ap_lo), jtu.tree_map(jnp.add, gv, gf)
        else:
            out = integrate(aug, (y_hi, a, gp), s_span, None)
            _, a_lo, gp_lo = jtu.tree_map(lambda z: z[-1], out)
        a_lo = jtu.tree_map(jnp.add, a_lo, g_lo)
        return (a_lo, gp_lo), None

    a_final = jtu.tree_map(lambda g: g[-1], g_ys)
    gp0 = jtu.tree_map(jnp.zeros_like, p_diff)
    xs = (
        jtu.tree_map(lambda y: y[1:], ys),
        ts[:-1],
        ts[1:],
        jtu.tree_map(lambda g: g[:-1], g_ys),
    )
    (a0, gp), _ = jax.lax.scan(body, (a_final, gp0), xs, reverse=True)
    g_f, g_args = gp
    return (g_f, a0, g_args)
