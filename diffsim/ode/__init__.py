"""ODE solvers: Runge-Kutta (fixed and adaptive), symplectic, with one `solve` entry point.

`solver.step(f, t, y, args, dt)` takes one step of dy/dt = f(t, y, args) for any pytree y;
`solve(f, y0, ts, args, solver=..., dt=..., grad=...)` gives the states at `ts`. A fixed-step
solve is the solver's step run by `diffsim.rollout`, so `grad` is a rollout strategy:

| grad                         | exact? | memory (T steps)        | solvers                  |
| ---------------------------- | ------ | ----------------------- | ------------------------ |
| `diffsim.BPTT()`             | yes    | O(T) stage residuals    | all                      |
| `diffsim.Checkpointed()`     | yes    | O(sqrt T) states        | all                      |
| `diffsim.DiscreteAdjoint()`  | yes    | O(T) states             | all                      |
| `Checkpointed(segments=n, inner=DiscreteAdjoint())` | yes | n + T/n states + one step | all |
| `ReversibleSolve()`          | yes*   | O(len(ts)) states       | Leapfrog, SymplecticEuler |
| `ContinuousAdjoint()`        | no     | O(len(ts)) states       | all                      |

(* up to the round-off of running the solver backwards.) For a large field (a neural ODE)
in bounded memory add `solve(..., remat_stages=True)` (`RematField`): a step's VJP then
holds one stage evaluation's internals at a time. Every strategy is an
`AbstractSolveGradient` (a rollout strategy is wrapped in `PerStep`); a new one is a
subclass. `diffsim.Reversible(inverse)` is accepted too, with `inverse(y_next, (t, dt)) ->
y`. Adaptive `Dopri5` solves (no `dt`) run a bounded rollout of `max_steps` attempts and
take BPTT, Checkpointed, DiscreteAdjoint and ContinuousAdjoint.

Stiff problems: `Kvaerno5()` (L-stable ESDIRK 5(4), simplified Newton with one LU per step,
stage roots differentiated by the implicit function theorem). Events: `solve(..., event=
Event(condition, jump=..., direction=...))` stops or resets at zero crossings found on the
step interpolant, with exact gradients of event times. `solve(..., dense=True)` gives a
`Solution` whose `evaluate(t)` interpolates (Dopri5's 4th-order extension, Hermite else).

Stability: `stability_function(solver, z)` gives R(z) (z = h lambda), `is_stable(solver, h, lam)`,
`stability_region` a grid of |R| and `plot_stability_regions` the |R| = 1 contours.
"""

from ._adaptive import PIController as PIController
from ._adjoint import (
    AbstractSolveGradient as AbstractSolveGradient,
    ContinuousAdjoint as ContinuousAdjoint,
    PerStep as PerStep,
    ReversibleSolve as ReversibleSolve,
)
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
from ._implicit import (
    AbstractImplicitSolver as AbstractImplicitSolver,
    Kvaerno5 as Kvaerno5,
)
from ._integrate import (
    DenseInterpolation as DenseInterpolation,
    Event as Event,
    Solution as Solution,
)
from ._remat import RematField as RematField
from ._root import implicit_root as implicit_root
from ._solve import solve as solve
from ._stability import (
    is_stable as is_stable,
    plot_stability_regions as plot_stability_regions,
    real_stability_boundary as real_stability_boundary,
    stability_function as stability_function,
    stability_region as stability_region,
)
from ._symplectic import (
    Leapfrog as Leapfrog,
    SymplecticEuler as SymplecticEuler,
    VelocityVerlet as VelocityVerlet,
)
