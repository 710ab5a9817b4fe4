"""`solve`: the one entry point for integrating dy/dt = f(t, y, args) to the times `ts`."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._checks import check_finite, check_positive, concrete
from .._custom_types import ArrayLike, Float, PyTree
from .._rollout import BPTT, AbstractGradient
from ._adaptive import PIController, integrate_adaptive
from ._adjoint import AbstractSolveGradient, PerStep
from ._base import AbstractAdaptiveRK, AbstractSolver, VectorField
from ._explicit import RK4
from ._fixed import integrate_fixed, steps_per_interval
from ._implicit import AbstractImplicitSolver
from ._integrate import Event, Solution, integrate_solution
from ._remat import RematField

_GRADS = (
    "BPTT(), Checkpointed(), DiscreteAdjoint(), Reversible(inverse), ReversibleSolve() "
    "or ContinuousAdjoint()"
)
_BPTT = BPTT()
_RK4 = RK4()
_PI = PIController()


class _Integrator(eqx.Module):
    """The forward integration with every setting fixed; `ContinuousAdjoint` reuses it backwards."""

    solver: AbstractSolver
    n: int | None = eqx.field(static=True)
    rtol: Any
    atol: Any
    max_steps: int = eqx.field(static=True)
    dt0: Any
    controller: PIController
    throw: bool = eqx.field(static=True)

    def __call__(self, f, y0, ts, args, grad: AbstractGradient = _BPTT):
        if self.n is not None:
            return integrate_fixed(self.solver, f, y0, ts, args, self.n, grad)
        assert isinstance(self.solver, AbstractAdaptiveRK)  # solve checked it
        ys, reached, _, _ = integrate_adaptive(
            self.solver,
            f,
            y0,
            ts,
            args,
            rtol=self.rtol,
            atol=self.atol,
            max_steps=self.max_steps,
            dt0=self.dt0,
            controller=self.controller,
            grad=grad,
        )
        if self.throw:
            ys = jtu.tree_map(
                lambda a: eqx.error_if(
                    a,
                    jnp.logical_not(reached),
                    f"solve: max_steps={self.max_steps} attempts were used up before "
                    "ts[-1] was reached; raise max_steps or loosen rtol/atol",
                ),
                ys,
            )
        return ys


def solve(
    f: VectorField,
    y0: PyTree,
    ts: Float[ArrayLike, " m"],  # noqa: F722
    args: Any = None,
    *,
    solver: AbstractSolver = _RK4,
    dt: float | None = None,
    n_steps: int | None = None,
    grad: AbstractGradient | AbstractSolveGradient = _BPTT,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 4096,
    dt0: float | None = None,
    controller: PIController = _PI,
    throw: bool = True,
    event: Event | None = None,
    dense: bool = False,
    solution: bool = False,
    remat_stages: bool = False,
) -> PyTree | Solution:
    """Gives the solution of dy/dt = f(t, y, args), y(ts[0]) = y0, at the times `ts`.

    Fixed steps (every solver, `dt=` or `n_steps=`): each interval between consecutive
    times in `ts` is split into n equal steps, n = ceil(max interval / dt) (so with
    uniform `ts` whose spacing is a multiple of `dt`, every step is exactly `dt`).
    Adaptive steps (`Dopri5()` or the implicit `Kvaerno5()` with neither `dt` nor
    `n_steps`): a PI controller keeps the local error below `atol + rtol |y|`, with at most
    `max_steps` attempts in total. Adaptive solves can also find events (`event=`), keep a
    dense interpolant (`dense=True`) and count steps and evaluations (`solution=True`);
    then `solve` gives a `Solution` instead of the states alone.

    **Arguments:**

    - `f`: the vector field `f(t, y, args) -> dy/dt`, same pytree structure as y; a plain
      function or an `eqx.Module` (neural ODE). Arrays it closes over are differentiated.
    - `y0`: the initial state, any pytree of floating arrays (for `Leapfrog` /
      `SymplecticEuler` a pair `(q, p)`).
    - `ts`: increasing times, shape (m,), m >= 1; `ts[0]` is the initial time.
    - `args`: passed to `f`; its floating arrays are differentiated.
    - `solver`: `Euler()`, `Midpoint()`, `Heun()`, `RK4()`, `Dopri5()`, `SymplecticEuler()`,
      `Leapfrog()`, `Kvaerno5()` (implicit, for stiff problems).
    - `dt`: fixed step size (> 0); needs concrete `ts` and `dt`. Under `jit` with traced
      `ts`, pass `n_steps` (steps per interval) instead.
    - `grad`: the gradient strategy: the rollout strategies `diffsim.BPTT()`,
      `Checkpointed()`, `DiscreteAdjoint()` run per solver step; `diffsim.Reversible(inverse)`
      with `inverse(y_next, (t, dt)) -> y`, or `ReversibleSolve()` which builds it from a
      reversible solver; `ContinuousAdjoint()` (approximate, O(1) memory). For adaptive
      solves the rollout state holds the buffer of saved states, so `DiscreteAdjoint`
      stores max_steps x len(ts) states: prefer `Checkpointed()` there when len(ts) is large.
    - `rtol`, `atol`: tolerances of adaptive steps (> 0).
    - `max_steps`: bound on adaptive step attempts (the scan length; memory of BPTT).
    - `dt0`: first adaptive step; `None` picks it from f (Hairer-Wanner).
    - `controller`: the step-size controller for adaptive steps.
    - `throw`: if the adaptive solve runs out of `max_steps`, raise (under jit, through
      `eqx.error_if`); with `throw=False` the states not reached are NaN.
    - `event`: an `Event` (zero crossings of a condition: stop, or jump and continue);
      adaptive steps only. Its times and their gradients are exact on the interpolant.
    - `dense`: keep the interpolant of every step (`Solution.evaluate(t)`): Dopri5's
      4th-order continuous extension, cubic Hermite for `Kvaerno5`.
    - `solution`: give a `Solution` (counts of steps, f and Jacobian evaluations, step
      times) even without `event` or `dense`.
    - `remat_stages`: recompute each evaluation of `f` in the backward pass instead of
      storing its internals (`RematField`): a step's VJP then holds one stage's
      activations at a time, not all of them. For large fields (neural ODEs) in bounded
      memory, with `grad=Checkpointed(segments=..., inner=DiscreteAdjoint())`; it costs
      about one more evaluation of `f` per stage in the backward pass.

    With `event`, `dense` or an implicit solver the gradient strategy must be a rollout
    strategy (`diffsim.BPTT()`, `Checkpointed()`, ...): BPTT through the accepted steps,
    with implicit stages and event times differentiated by the implicit function theorem.

    **Returns:** the states at `ts`: the structure of `y0`, every leaf with a leading
    axis of length m (`ys[0]` is `y0`); a `Solution` with `event`, `dense` or `solution`.

    **Raises:** `ValueError` naming the argument for dt <= 0, ts not strictly increasing,
    NaN in y0, rtol/atol <= 0, a strategy the solver cannot use; under jit the checks
    on traced values raise through `eqx.error_if`.

    **Example:**

    ```python
    f = lambda t, y, args: -args * y
    ys = solve(f, jnp.ones(3), jnp.linspace(0.0, 1.0, 11), 2.0, solver=RK4(), dt=0.01)
    dy = jax.grad(lambda k: solve(f, y0, ts, k, dt=0.01, grad=DiscreteAdjoint())[-1].sum())(2.0)
    ```
    """
    if not isinstance(remat_stages, bool):
        raise ValueError(f"solve: remat_stages must be True or False, got {remat_stages!r}")
    if remat_stages:
        f = RematField(f)
    if not isinstance(solver, AbstractSolver):
        raise TypeError(f"solve: solver must be a diffsim.ode solver such as RK4(), got {solver!r}")
    if isinstance(grad, AbstractGradient):
        grad = PerStep(grad)
    if not isinstance(grad, AbstractSolveGradient):
        raise TypeError(f"solve: grad must be one of {_GRADS}, got {grad!r}")
    ts, ts_np = _check_ts(ts)
    y0 = _check_y0(y0)
    if ts.shape[0] == 1:
        return jtu.tree_map(lambda a: a[None], y0)

    adaptive = dt is None and n_steps is None
    adaptive_solver = isinstance(solver, AbstractAdaptiveRK | AbstractImplicitSolver)
    if adaptive and not adaptive_solver:
        raise ValueError(
            f"solve: {type(solver).__name__} has fixed steps: pass dt= (or n_steps=); "
            "only Dopri5() and Kvaerno5() adapt their steps"
        )
    if event is not None and not isinstance(event, Event):
        raise TypeError(f"solve: event must be an Event, got {event!r}")
    full = event is not None or dense or solution
    if full and not adaptive:
        raise ValueError(
            "solve: event=, dense=True and solution=True need adaptive steps "
            f"(Dopri5() or Kvaerno5() without dt or n_steps), got dt={dt!r}, n_steps={n_steps!r}"
        )
    if adaptive:
        rtol = _check_positive(rtol, "rtol")
        atol = _check_positive(atol, "atol")
        if not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"solve: max_steps must be an int >= 1, got {max_steps!r}")
        if dt0 is not None:
            dt0 = _check_positive(dt0, "dt0")
        n = None
    else:
        n = steps_per_interval(ts if ts_np is None else ts_np, dt, n_steps)
    if adaptive and (full or isinstance(solver, AbstractImplicitSolver)):
        if not isinstance(grad, PerStep):
            raise ValueError(
                "solve: with event=, dense=True or an implicit solver, grad must be a rollout "
                f"strategy such as diffsim.BPTT() or Checkpointed(), got {grad!r}"
            )
        sol = _run_solution(
            solver,
            f,
            y0,
            ts,
            args,
            rtol,
            atol,
            max_steps,
            dt0,
            controller,
            grad.grad,
            event,
            dense,
            throw,
        )
        return sol if full else sol.ys
    integrator = _Integrator(solver, n, rtol, atol, max_steps, dt0, controller, throw)

    try:
        return grad.solve(integrator, f, y0, ts, args, solver=solver, adaptive=adaptive)
    except RuntimeError as e:  # equinox's runtime error puts our message after ~10 lines
        ours = [line for line in str(e).splitlines() if "solve: max_steps=" in line]
        if not ours:
            raise
        raise RuntimeError(ours[0][ours[0].index("solve: ") :]) from e


@eqx.filter_jit
def _run_solution(
    solver, f, y0, ts, args, rtol, atol, max_steps, dt0, controller, grad, event, dense, throw
) -> Solution:
    sol = integrate_solution(
        solver,
        f,
        y0,
        ts,
        args,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        dt0=dt0,
        controller=controller,
        grad=grad,
        event=event,
        dense=dense,
    )
    if not throw:
        return sol
    last = jtu.tree_leaves(jtu.tree_map(lambda a: a[-1], sol.ys))
    done = sol.terminated | jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in last]))
    ys = jtu.tree_map(
        lambda a: eqx.error_if(
            a,
            jnp.logical_not(done),
            f"solve: max_steps={max_steps} attempts were used up before ts[-1] was "
            "reached; raise max_steps or loosen rtol/atol",
        ),
        sol.ys,
    )
    if event is not None:
        ys = jtu.tree_map(
            lambda a: eqx.error_if(
                a,
                sol.n_events > event.max_events,
                f"solve: more than Event.max_events={event.max_events} events; raise it",
            ),
            ys,
        )
    return eqx.tree_at(lambda s: s.ys, sol, ys)


def _check_ts(ts):
    ts_np = concrete(ts)
    ts = jnp.asarray(ts)
    if not jnp.issubdtype(ts.dtype, jnp.floating):
        ts = ts.astype(jnp.result_type(float))
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(
            f"solve: ts must be a 1-d array with at least one time, got shape {ts.shape}"
        )
    if ts_np is not None:
        ts_np = ts_np.astype(ts.dtype)
        if not np.all(np.isfinite(ts_np)):
            raise ValueError(f"solve: ts must be finite, got {ts_np}")
        if ts_np.shape[0] > 1 and not np.all(np.diff(ts_np) > 0):
            raise ValueError(f"solve: ts must be strictly increasing, got {ts_np}")
    elif ts.shape[0] > 1:
        ts = eqx.error_if(
            ts, jnp.logical_not(jnp.all(ts[1:] > ts[:-1])), "solve: ts must be strictly increasing"
        )
    return ts, ts_np


def _check_y0(y0):
    leaves = jtu.tree_leaves(y0)
    if not leaves:
        raise ValueError("solve: y0 has no arrays")
    for a in leaves:
        dtype = jnp.result_type(a)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise ValueError(f"solve: y0 must hold floating-point arrays, got dtype {dtype}")
    return check_finite(jtu.tree_map(jnp.asarray, y0), "solve: y0")


def _check_positive(x, name):
    x = check_positive(x, f"solve: {name}", scalar=True)
    a = concrete(x)
    return x if a is None else float(a)
