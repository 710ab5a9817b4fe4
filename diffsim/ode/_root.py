"""Roots differentiated by the implicit function theorem, never through the iterations.

`implicit_root(residual, z0, find, data)` runs `find` (any iteration: Newton with a frozen
Jacobian, bisection, ...) forwards and, in reverse mode, gives the cotangent of every
array `residual` closes over from r(z*(theta), theta) = 0:

    dz*/dtheta = -(dr/dz)^{-1} dr/dtheta,

with dr/dz taken exactly at the root. The implicit stages of `Kvaerno5` and the event
times of `solve(..., event=...)` are found this way.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._custom_types import Array


def implicit_root(
    residual: Callable[[Array], Array], z0: Array, find: Callable, data: Any = None
) -> tuple[Array, Any]:
    """Gives `(z, aux)` with residual(z) ~ 0 found by `find(residual, z0, data) -> (z, aux)`.

    **Arguments:**

    - `residual`: `z -> r`, same shape as z (a vector or a scalar); arrays it closes over
      are differentiated by the implicit function theorem.
    - `z0`: the starting guess (gets no gradient).
    - `find`: the forward iteration, never differentiated.
    - `data`: arrays `find` needs (a factorisation, tolerances); no gradient.

    **Returns:** the root and `find`'s auxiliary output (iteration count, success flag).
    """
    closed, consts = jax.closure_convert(residual, z0)
    data = jax.lax.stop_gradient(data)
    return _root(closed, find, z0, data, tuple(consts))


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _root(residual, find, z0, data, consts):
    return find(lambda z: residual(z, *consts), jax.lax.stop_gradient(z0), data)


def _root_fwd(residual, find, z0, data, consts):
    z, aux = find(lambda x: residual(x, *consts), jax.lax.stop_gradient(z0), data)
    return (z, aux), (z, z0, data, consts)


def _root_bwd(residual, find, res, cts):
    z, z0, data, consts = res
    z_bar = cts[0]
    jac = jax.jacfwd(lambda x: residual(x, *consts))(z)
    if z.ndim == 0:
        w = z_bar / jac
    else:
        w = jnp.linalg.solve(jac.T, z_bar)
    _, vjp = jax.vjp(lambda *c: residual(z, *c), *consts)
    c_bar = vjp(-w)
    zeros = lambda t: jtu.tree_map(_zero_cotangent, t)
    return zeros(z0), zeros(data), tuple(c_bar)


def _zero_cotangent(x):
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(x.shape, dtype=jax.dtypes.float0)


_root.defvjp(_root_fwd, _root_bwd)
