"""Symplectic, exactly reversible solvers for separable Hamiltonian systems, y = (q, p).

The vector field is the usual `f(t, (q, p), args) -> (dq/dt, dp/dt)` and must be
separable: dq/dt depends on p only and dp/dt on q only (H = T(p) + V(q)). Each half
is evaluated by calling `f` and keeping one component; under `jit` XLA drops the unused
half, so a step costs what a hand-written one does.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax.numpy as jnp
import jax.tree_util as jtu

from .._custom_types import PyTree, RealScalarLike
from ._base import AbstractReversibleSolver, VectorField


def _axpy(y, dt, v):
    return jtu.tree_map(lambda a, b: (a + dt * b).astype(jnp.result_type(a)), y, v)


def _split(y, name):
    if not (isinstance(y, (tuple, list)) and len(y) == 2):
        raise ValueError(
            f"{name}: the state must be a pair (q, p) for a separable Hamiltonian system, "
            f"got {type(y).__name__}"
        )
    return y


def _pair(like, q, p):
    return [q, p] if isinstance(like, list) else (q, p)


def _force(f, t, q, p, args):
    return f(t, (q, p), args)[1]


def _velocity(f, t, q, p, args):
    return f(t, (q, p), args)[0]


class SymplecticEuler(AbstractReversibleSolver):
    """Symplectic Euler (kick then drift), order 1, exactly invertible.

    p1 = p + dt F(t, q);  q1 = q + dt V(t, p1)  with (V, F) = f(t, (q, p), args).

    **Example:** `q1, p1 = SymplecticEuler().step(f, t, (q, p), args, dt)`
    """

    order: ClassVar[int] = 1

    def step(
        self, f: VectorField, t: RealScalarLike, y: PyTree, args: Any, dt: RealScalarLike
    ) -> PyTree:
        """Gives (q, p) at t + dt by one kick-drift step (state y = (q, p))."""
        q, p = _split(y, "SymplecticEuler")
        p1 = _axpy(p, dt, _force(f, t, q, p, args))
        q1 = _axpy(q, dt, _velocity(f, t, q, p1, args))
        return _pair(y, q1, p1)

    def inverse_step(
        self, f: VectorField, t: RealScalarLike, y_next: PyTree, args: Any, dt: RealScalarLike
    ) -> PyTree:
        """Gives (q, p) at t from the state at t + dt (the exact inverse of `step`)."""
        q1, p1 = _split(y_next, "SymplecticEuler")
        q = _axpy(q1, -dt, _velocity(f, t, q1, p1, args))
        p = _axpy(p1, -dt, _force(f, t, q, p1, args))
        return _pair(y_next, q, p)


class Leapfrog(AbstractReversibleSolver):
    """Velocity Verlet / leapfrog (kick-drift-kick), order 2, symplectic, time-reversible
    and exactly invertible.

    p_h = p + dt/2 F(t, q);  q1 = q + dt V(t + dt/2, p_h);  p1 = p_h + dt/2 F(t + dt, q1).

    **Example:** `q1, p1 = Leapfrog().step(f, t, (q, p), args, dt)`
    """

    order: ClassVar[int] = 2

    def step(
        self, f: VectorField, t: RealScalarLike, y: PyTree, args: Any, dt: RealScalarLike
    ) -> PyTree:
        """Gives (q, p) at t + dt by one kick-drift-kick step (state y = (q, p))."""
        q, p = _split(y, "Leapfrog")
        half = 0.5 * dt
        ph = _axpy(p, half, _force(f, t, q, p, args))
        q1 = _axpy(q, dt, _velocity(f, t + half, q, ph, args))
        p1 = _axpy(ph, half, _force(f, t + dt, q1, ph, args))
        return _pair(y, q1, p1)

    def inverse_step(
        self, f: VectorField, t: RealScalarLike, y_next: PyTree, args: Any, dt: RealScalarLike
    ) -> PyTree:
        """Gives (q, p) at t from the state at t + dt (the exact inverse of `step`)."""
        q1, p1 = _split(y_next, "Leapfrog")
        half = 0.5 * dt
        ph = _axpy(p1, -half, _force(f, t + dt, q1, p1, args))
        q = _axpy(q1, -dt, _velocity(f, t + half, q1, ph, args))
        p = _axpy(ph, -half, _force(f, t, q, ph, args))
        return _pair(y_next, q, p)


VelocityVerlet = Leapfrog
