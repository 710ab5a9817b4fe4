"""Rematerialised vector fields: each evaluation's internals are recomputed on the way back.

`solve(..., remat_stages=True)` wraps the field in `RematField`, so that a solver step's
VJP keeps only the inputs of its stage evaluations (t, y, args), not their activations, and
recomputes one evaluation at a time, just before its own backward pass. With an MLP field
that divides the memory of one RK4 step's VJP by about the number of stages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from .._checks import stop_int_gradients, strong_types
from .._custom_types import PyTree
from .._rollout import _materialise


class RematField(eqx.Module):
    """The vector field `f`, evaluated with its internals recomputed in the backward pass.

    Same values as `f`; under reverse-mode autodiff the residuals of one call are its
    inputs only. The recomputation waits for the cotangent of its own call (a branch on a
    value of the cotangent, as in `diffsim.Checkpointed`): with `jax.checkpoint` instead,
    XLA is free to hoist every stage's recomputation ahead of the backward pass of a step
    (it did on the CPU: an RK4 step of an MLP field kept all four stages' activations).

    **Arguments:**

    - `f`: the vector field `f(t, y, args) -> dy/dt` (a function or an `eqx.Module`; the
      arrays it closes over are differentiated).

    **Example:** `solve(RematField(field), y0, ts, dt=0.01, grad=...)`, or
    `solve(field, ..., remat_stages=True)`.
    """

    f: Callable

    def __call__(self, t, y: PyTree, args: Any) -> PyTree:
        f_cc = strong_types(stop_int_gradients(eqx.filter_closure_convert(self.f, t, y, args)))
        return _remat_call((f_cc, t, y, args))


def _is_diff(x):
    return eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.inexact)


def _all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(a)) for a in jtu.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


@eqx.filter_custom_vjp
def _remat_call(vjp_arg):
    f, t, y, args = vjp_arg
    return f(t, y, args)


@_remat_call.def_fwd
def _remat_fwd(perturbed, vjp_arg):
    del perturbed
    f, t, y, args = vjp_arg
    return f(t, y, args), None


@_remat_call.def_bwd
def _remat_bwd(res, g_out, perturbed, vjp_arg):
    del res
    diff, static = eqx.partition(vjp_arg, _is_diff)
    g_out = _materialise(g_out, jax.eval_shape(lambda: vjp_arg[0](*vjp_arg[1:])))

    def recompute(diff, g_out):
        def call(d):
            f, t, y, args = eqx.combine(d, static)
            return f(t, y, args)

        _, vjp_fn = jax.vjp(call, diff)
        (g,) = vjp_fn(g_out)
        return g

    # Both branches are the same computation; the branch on the cotangent keeps the
    # recomputation after the backward pass of what came later.
    return jax.lax.cond(_all_finite(g_out), recompute, recompute, diff, g_out)
