"""Implicit (stiff) solvers: Kvaerno's L-stable ESDIRK 5(4) with simplified Newton.

Each stage z_i of an ESDIRK step solves z_i = base_i + h gamma f(t + c_i h, z_i). The
Jacobian J = df/dy is taken once per step attempt at its start, I - h gamma J is LU-factored
once, and that factorisation serves every Newton iteration of every stage. A Newton failure
(divergence or no convergence in `max_newton` iterations) rejects the step. The stage roots
are differentiated by the implicit function theorem (`implicit_root`), so backpropagation
runs through the accepted steps but never through the Newton iterations.
"""

from __future__ import annotations

import abc
from functools import partial
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax.flatten_util import ravel_pytree

from .._custom_types import Array, PyTree
from ._base import AbstractSolver, VectorField
from ._root import implicit_root

_G = 0.26
_A = (
    (),
    (_G,),
    (0.13, 0.84033320996790809),
    (0.22371961478320505, 0.47675532319799699, -0.06470895363112615),
    (0.16648564323248321, 0.10450018841591720, 0.03631482272098715, -0.13090704451073998),
    (
        0.13855640231268224,
        0.0,
        -0.04245337201752043,
        0.02446657898003141,
        0.61943039072480676,
    ),
    (
        0.13659751177640291,
        0.0,
        -0.05496908796538376,
        -0.04118626728321046,
        0.62993304899016403,
        0.06962479448202728,
    ),
)
# Predictors of each implicit stage's derivative from the earlier ones (rows sum to 1).
_PRED = (
    (),
    (1.0,),
    (-1.366025403784441, 2.3660254037844357),
    (-0.19650552613122207, 0.8113579546496623, 0.38514757148155954),
    (0.10375304369958693, 0.937994698066431, -0.04174774176601781, 0.0),
    (-0.17281112873898072, 0.6235784481025847, 0.5492326806363959, 0.0, 0.0),
    _A[5] + (_G,),
)
_C = (0.0, 0.52, 1.230333209967908, 0.8957659843500759, 0.43639360985864756, 1.0, 1.0)
_B = _A[6] + (_G,)  # stiffly accurate: the solution is the last stage
_B_ERR = tuple(b - a for b, a in zip(_B, _A[5] + (_G, 0.0), strict=True))


def _rms(x):
    return jnp.sqrt(jnp.mean(x**2))


def _newton(max_iter, residual, z0, data):
    """Simplified Newton with a frozen LU factorisation; gives (z, (iterations, converged))."""
    lu, scale, tol = data
    tiny = jnp.finfo(z0.dtype).tiny

    def cond(c):
        _, it, _, done, fail = c
        return (~done) & (~fail) & (it < max_iter)

    def body(c):
        z, it, prev, _, _ = c
        dz = -jsl.lu_solve(lu, residual(z))
        z = z + dz
        nrm = _rms(dz / scale)
        rate = nrm / jnp.maximum(prev, tiny)
        first = it == 0
        done = (nrm <= tol) | (~first & (rate < 1) & (rate / (1 - rate) * nrm <= tol))
        fail = ~jnp.isfinite(nrm) | (~first & (rate >= 1) & (nrm > tol))
        return z, it + 1, nrm, done, fail

    init = (z0, jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, z0.dtype), False, False)
    z, it, _, done, fail = jax.lax.while_loop(cond, body, init)
    return z, (it, done & ~fail)


class AbstractImplicitSolver(AbstractSolver):
    """An implicit one-step method with an embedded error estimate for stiff problems.

    `attempt` works on a flat state vector; `solve` drives it with adaptive steps.
    """

    error_order: eqx.AbstractClassVar[int]

    @abc.abstractmethod
    def attempt(self, f, t, u: Array, args: Any, h, f0: Array, scale: Array) -> tuple:
        """One step attempt of size h from (t, u) with f0 = f(t, u, args).

        Gives `(u1, err, f1, coeffs, converged, nfev)`: the new state, the local error
        estimate, f at the new point, the (5, n) coefficients of the step's interpolating
        polynomial in theta = (t - t0) / h, whether every Newton solve converged, and the
        number of evaluations of f spent. `scale` (atol + rtol |u|) measures Newton steps.
        """


class Kvaerno5(AbstractImplicitSolver):
    """Kvaerno's ESDIRK 5(4): L-stable, stiffly accurate, 7 stages (the first explicit).

    Newton iterations on each implicit stage reuse one LU factorisation of I - h gamma J
    (gamma = 0.26) per step; stage roots are differentiated by the implicit function
    theorem. Dense output: cubic Hermite. Adaptive steps when `solve` gets no `dt`.

    **Arguments:**

    - `newton_tol`: Newton stops when its step, in units of atol + rtol |y|, is below this.
    - `max_newton`: iterations per stage before the step is rejected.

    **Example:** `ys = solve(robertson, y0, ts, k, solver=Kvaerno5(), rtol=1e-6, atol=1e-10)`

    Reference: A. Kvaerno, Singly diagonally implicit Runge-Kutta methods with an explicit
    first stage, BIT 44 (2004) 489-502.
    """

    newton_tol: float = 1e-3
    max_newton: int = eqx.field(default=10, static=True)
    order: ClassVar[int] = 5
    error_order: ClassVar[int] = 4

    def __check_init__(self):
        if not self.newton_tol > 0:
            raise ValueError(f"Kvaerno5: newton_tol must be > 0, got {self.newton_tol}")
        if not (isinstance(self.max_newton, int) and self.max_newton >= 1):
            raise ValueError(f"Kvaerno5: max_newton must be an int >= 1, got {self.max_newton}")

    def attempt(self, f, t, u, args, h, f0, scale):
        n = u.shape[0]
        fixed = jax.lax.stop_gradient((t, u, h))
        jac = jax.jacfwd(lambda v: f(fixed[0], v, args))(fixed[1])
        m = jnp.eye(n, dtype=u.dtype) - (fixed[2] * _G) * jax.lax.stop_gradient(jac)
        lu = jsl.lu_factor(m)
        find = partial(_newton, self.max_newton)
        ks = [f0]
        converged = jnp.asarray(True)
        nfev = jnp.zeros((), jnp.int32)
        z = u
        for i in range(1, 7):
            base = u + h * sum(a * k for a, k in zip(_A[i], ks, strict=False) if a != 0.0)
            ti = t + _C[i] * h
            guess = base + (h * _G) * sum(p * k for p, k in zip(_PRED[i], ks, strict=False))

            def residual(zz, base=base, ti=ti):
                return zz - base - (h * _G) * f(ti, zz, args)

            z, (it, ok) = implicit_root(
                residual, guess, find, (lu, scale, jnp.asarray(self.newton_tol, u.dtype))
            )
            ks.append((z - base) / (h * _G))
            converged = converged & ok
            nfev = nfev + it
        u1 = z
        err = h * sum(b * k for b, k in zip(_B_ERR, ks, strict=True) if b != 0.0)
        f1 = ks[-1]
        return u1, err, f1, hermite_coeffs(u, u1, f0, f1, h), converged, nfev

    def step(self, f: VectorField, t, y: PyTree, args: Any, dt) -> PyTree:
        """Gives y(t + dt) by one Kvaerno5 step (Newton to `newton_tol` relative to 1e-8 (1 + |y|)).

        **Example:** `y1 = Kvaerno5().step(lambda t, y, a: -1e4 * y, 0.0, jnp.ones(2), None, 0.1)`
        """
        u, unravel = ravel_pytree(y)

        def flat(t_, v, a):
            return ravel_pytree(f(t_, unravel(v), a))[0]

        f0 = flat(t, u, args)
        scale = 1e-8 * (1.0 + jnp.abs(jax.lax.stop_gradient(u)))
        u1 = self.attempt(flat, t, u, args, dt, f0, scale)[0]
        return unravel(u1)


def hermite_coeffs(u0, u1, f0, f1, h):
    """The (5, n) monomial coefficients in theta of the cubic Hermite interpolant on a step."""
    d = u1 - u0
    return jnp.stack(
        [
            u0,
            h * f0,
            3 * d - h * (2 * f0 + f1),
            -2 * d + h * (f0 + f1),
            jnp.zeros_like(u0),
        ]
    )
