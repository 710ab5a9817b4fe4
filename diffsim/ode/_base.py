"""Solver base classes: one `step` of an ODE dy/dt = f(t, y, args).

A solver is a value (an `eqx.Module`). Fixed-step explicit Runge-Kutta methods are
driven by a Butcher tableau held as plain Python floats, so zero coefficients are
skipped at trace time and the compiled step is as small as a hand-written one.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._custom_types import PyTree

VectorField = Callable[[Any, PyTree, Any], PyTree]


@dataclasses.dataclass(frozen=True)
class ButcherTableau:
    """The coefficients of an explicit Runge-Kutta method (Python floats).

    **Arguments:**

    - `c`: stage times, length s (c[0] = 0).
    - `a`: lower-triangular stage weights; `a[i]` has length i (row 0 is empty).
    - `b`: weights of the solution, length s.
    - `b_error`: `b - b_hat`, the weights of the embedded error estimate (adaptive
      methods), or `None`.
    - `fsal`: first-same-as-last: the last stage equals f at the new point.
    """

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    b_error: tuple[float, ...] | None = None
    fsal: bool = False

    def __post_init__(self):
        s = len(self.c)
        if len(self.a) != s or any(len(row) != i for i, row in enumerate(self.a)):
            raise ValueError(f"ButcherTableau: a must be lower-triangular with {s} rows")
        if len(self.b) != s:
            raise ValueError(f"ButcherTableau: b must have {s} entries, got {len(self.b)}")
        if self.b_error is not None and len(self.b_error) != s:
            raise ValueError(f"ButcherTableau: b_error must have {s} entries")

    @property
    def stages(self) -> int:
        return len(self.c)

    def stability_polynomial(self) -> np.ndarray:
        """Coefficients g_k (k = 0..s) of R(z) = sum_k g_k z^k, lowest power first.

        For an explicit method R(z) = 1 + z b^T (I - z A)^{-1} 1 = 1 + sum_k z^k b^T A^{k-1} 1,
        a polynomial of degree at most s because A is strictly lower-triangular.
        """
        s = self.stages
        A = np.zeros((s, s))
        for i, row in enumerate(self.a):
            A[i, : len(row)] = row
        b = np.asarray(self.b)
        coeffs = [1.0]
        v = np.ones(s)
        for _ in range(s):
            coeffs.append(float(b @ v))
            v = A @ v
        return np.asarray(coeffs)


def _combine(y, ks, coeffs, dt):
    """y + dt * sum_j coeffs[j] * ks[j] over the pytree, skipping zero coefficients."""
    terms = [(c, k) for c, k in zip(coeffs, ks, strict=False) if c != 0.0]
    if not terms:
        return y
    cs = [c for c, _ in terms]

    def leaf(y_, *k_):
        acc = cs[0] * k_[0] if cs[0] != 1.0 else k_[0]
        for c, kk in zip(cs[1:], k_[1:], strict=True):
            acc = acc + (c * kk if c != 1.0 else kk)
        return (y_ + dt * acc).astype(jnp.result_type(y_))

    return jtu.tree_map(leaf, y, *[k for _, k in terms])


class AbstractSolver(eqx.Module):
    """A one-step method for dy/dt = f(t, y, args).

    Subclasses declare `order` (the global order of accuracy) and implement `step`.
    `y` may be any pytree of arrays; `f(t, y, args)` returns a pytree of the same
    structure.
    """

    order: eqx.AbstractClassVar[int]

    @abc.abstractmethod
    def step(self, f: VectorField, t, y: PyTree, args: Any, dt) -> PyTree:
        """Gives y(t + dt) approximated by one step of size `dt` from `(t, y)`."""


class AbstractExplicitRK(AbstractSolver):
    """An explicit Runge-Kutta method defined by its Butcher tableau.

    Gives `step` and the linear stability function R(z) (z = h * lambda): one step
    applied to y' = lambda y multiplies y by R(h lambda).
    """

    tableau: eqx.AbstractClassVar[ButcherTableau]

    def stages(self, f: VectorField, t, y: PyTree, args: Any, dt, k0=None, n=None) -> list:
        """Gives the first `n` (default all) stage derivatives k_i.

        `k0`, if given, is f(t, y, args) (first-same-as-last reuse)."""
        tab = self.tableau
        ks = [f(t, y, args) if k0 is None else k0]
        for i in range(1, tab.stages if n is None else n):
            yi = _combine(y, ks, tab.a[i], dt)
            ks.append(f(t + tab.c[i] * dt, yi, args))
        return ks

    def step(self, f: VectorField, t, y: PyTree, args: Any, dt) -> PyTree:
        """Gives y(t + dt) by one Runge-Kutta step.

        **Arguments:**

        - `f`: the vector field `f(t, y, args) -> dy/dt` (same pytree structure as y).
        - `t`: the current time (scalar).
        - `y`: the current state (any pytree of inexact arrays).
        - `args`: passed through to `f`.
        - `dt`: the step size (scalar, > 0 for forward integration).

        **Returns:** the state after one step, with the structure and dtypes of `y`.

        **Example:** `y1 = RK4().step(lambda t, y, a: -y, 0.0, jnp.ones(3), None, 0.1)`
        """
        b = self.tableau.b
        needed = max(i for i, bi in enumerate(b) if bi != 0.0) + 1
        ks = self.stages(f, t, y, args, dt, n=needed)
        return _combine(y, ks, b[:needed], dt)

    def stability_function(self, z):
        """Gives R(z), the per-step growth factor on y' = lambda y (complex z = h lambda)."""
        coeffs = self.tableau.stability_polynomial()
        z = jnp.asarray(z)
        out = jnp.zeros_like(z, dtype=jnp.result_type(z, 1.0))
        for g in coeffs[::-1]:  # Horner
            out = out * z + g
        return out


class AbstractAdaptiveRK(AbstractExplicitRK):
    """An explicit Runge-Kutta method with an embedded error estimate (adaptive steps)."""

    error_order: eqx.AbstractClassVar[int]

    def step_with_error(self, f: VectorField, t, y: PyTree, args: Any, dt, k0=None):
        """Gives `(y1, y_error, f1)`: the new state, the local error estimate, and f at
        the new point when the method is FSAL (else `None`). `k0` = f(t, y) may be passed in."""
        tab = self.tableau
        ks = self.stages(f, t, y, args, dt, k0=k0)
        y1 = _combine(y, ks, tab.b, dt)
        zero = jtu.tree_map(jnp.zeros_like, y)
        err = _combine(zero, ks, tab.b_error, dt)
        f1 = ks[-1] if tab.fsal else None
        return y1, err, f1


class AbstractReversibleSolver(AbstractSolver):
    """A solver whose step has an exact inverse.

    `inverse_step(f, t, step(f, t, y, args, dt), args, dt) == y` up to round-off;
    `solve(..., grad=ReversibleSolve())` uses it for O(1)-memory gradients."""

    @abc.abstractmethod
    def inverse_step(self, f: VectorField, t, y_next: PyTree, args: Any, dt) -> PyTree:
        """Gives the state y at time t from y_next = step(f, t, y, args, dt)."""
