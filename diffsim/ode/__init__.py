"""ODE solvers: Runge-Kutta (fixed and adaptive), symplectic, with one `solve` entry point.

`solver.step(f, t, y, args, dt)` takes one step of dy/dt = f(t, y, args) for any pytree y;
`solve(f, y0, ts, args, solver=..., dt=..., grad=...)` gives the states at `ts` with a
selectable gradient strategy (the rollout strategies, `ReversibleSolve`, `ContinuousAdjoint`).
"""

from ._base import (
    AbstractAdaptiveRK as AbstractAdaptiveRK,
    AbstractExplicitRK as AbstractExplicitRK,
    AbstractReversibleSolver as AbstractReversibleSolver,
    AbstractSolver as AbstractSolver,
    ButcherTableau as ButcherTableau,
)
from ._explicit import (
    RK4 as RK4,
    Dopri5 as Dopri5,
    Euler as Euler,
    Heun as Heun,
    Midpoint as Midpoint,
)
from ._symplectic import (
    Leapfrog as Leapfrog,
    SymplecticEuler as SymplecticEuler,
    VelocityVerlet as VelocityVerlet,
)
from ._adaptive import PIController as PIController
from ._adjoint import ContinuousAdjoint as ContinuousAdjoint, ReversibleSolve as ReversibleSolve
from ._solve import solve as solve
from ._stability import (
    is_stable as is_stable,
    plot_stability_regions as plot_stability_regions,
    real_stability_boundary as real_stability_boundary,
    stability_function as stability_function,
    stability_region as stability_region,
)
