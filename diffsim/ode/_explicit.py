"""Explicit Runge-Kutta solvers: Euler, midpoint, Heun, RK4 (fixed step) and Dopri5 (adaptive)."""

from __future__ import annotations

from typing import ClassVar

from ._base import AbstractAdaptiveRK, AbstractExplicitRK, ButcherTableau


class Euler(AbstractExplicitRK):
    """Explicit (forward) Euler, order 1: y1 = y + dt f(t, y). R(z) = 1 + z.

    **Example:** `y1 = Euler().step(f, t, y, args, dt)`
    """

    order: ClassVar[int] = 1
    tableau: ClassVar[ButcherTableau] = ButcherTableau(c=(0.0,), a=((),), b=(1.0,))


class Midpoint(AbstractExplicitRK):
    """Explicit midpoint rule, order 2: y1 = y + dt f(t + dt/2, y + dt/2 f(t, y)).

    **Example:** `y1 = Midpoint().step(f, t, y, args, dt)`
    """

    order: ClassVar[int] = 2
    tableau: ClassVar[ButcherTableau] = ButcherTableau(c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0))


class Heun(AbstractExplicitRK):
    """Heun's method (explicit trapezoidal rule), order 2.

    **Example:** `y1 = Heun().step(f, t, y, args, dt)`
    """

    order: ClassVar[int] = 2
    tableau: ClassVar[ButcherTableau] = ButcherTableau(c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5))


class RK4(AbstractExplicitRK):
    """The classical fourth-order Runge-Kutta method.

    R(z) = 1 + z + z^2/2 + z^3/6 + z^4/24.

    **Example:** `y1 = RK4().step(f, t, y, args, dt)`
    """

    order: ClassVar[int] = 4
    tableau: ClassVar[ButcherTableau] = ButcherTableau(
        c=(0.0, 0.5, 0.5, 1.0),
        a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
        b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    )


_DOPRI5_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DOPRI5_B_HAT = (
    5179 / 57600,
    0.0,
    7571 / 16695,
    393 / 640,
    -92097 / 339200,
    187 / 2100,
    1 / 40,
)


class Dopri5(AbstractAdaptiveRK):
    """Dormand-Prince 5(4): fifth-order solution with an embedded fourth-order error
    estimate, first-same-as-last. With `dt=` it runs fixed steps; without, `solve`
    adapts the step with a PI controller to `rtol`/`atol`.

    **Example:** `ys = solve(f, y0, ts, args, solver=Dopri5(), rtol=1e-8, atol=1e-10)`
    """

    order: ClassVar[int] = 5
    error_order: ClassVar[int] = 4
    tableau: ClassVar[ButcherTableau] = ButcherTableau(
        c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
        a=(
            (),
            (1 / 5,),
            (3 / 40, 9 / 40),
            (44 / 45, -56 / 15, 32 / 9),
            (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
            (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
            _DOPRI5_B[:6],
        ),
        b=_DOPRI5_B,
        b_error=tuple(b - bh for b, bh in zip(_DOPRI5_B, _DOPRI5_B_HAT, strict=True)),
        fsal=True,
    )
