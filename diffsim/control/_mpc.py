"""Receding-horizon model predictive control (iLQR inside), and closed-loop simulation."""

from __future__ import annotations

import time
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_finite
from .._custom_types import Array, Float, PRNGKeyArray
from .._results import result_repr
from ._costs import Cost
from ._ilqr import _ALPHAS, _ilqr_unchecked


class MPC(eqx.Module):
    """A receding-horizon controller: at each step, a few warm-started iLQR iterations.

    At time step `t` from state `x` it optimises controls over steps t..t+horizon-1 of
    `cost` (time-varying references are read at absolute indices), applies the first
    control, and keeps the rest, shifted by one, as the next warm start.

    **Arguments:**

    - `model`: the controller's internal discrete model (may differ from the plant).
    - `cost`: a `Cost`; the terminal cost closes each horizon.
    - `horizon`: steps per prediction, >= 1.
    - `iterations`: iLQR iterations per control step (warm starts make a few enough).

    **Example:**

    ```python
    mpc = MPC(model, cost, horizon=30, iterations=3)
    res = closed_loop(mpc, plant, x0, steps=200, key=jax.random.key(0))
    ```
    """

    model: eqx.Module
    cost: Cost
    horizon: int = eqx.field(static=True)
    iterations: int = eqx.field(default=3, static=True)

    def __check_init__(self):
        if not (isinstance(self.horizon, int) and self.horizon >= 1):
            raise ValueError(f"MPC: horizon must be an int >= 1, got {self.horizon!r}")
        if not (isinstance(self.iterations, int) and self.iterations >= 1):
            raise ValueError(f"MPC: iterations must be an int >= 1, got {self.iterations!r}")

    def step(self, x: Float[Array, " n"], us_warm: Float[Array, "H m"], t) -> tuple:
        """Gives `(u, next_warm_start, predicted_cost)` for state `x` at time index `t`.

        **Raises:** `ValueError` if a concrete `x` or `us_warm` holds NaN or inf (checked
        on the host before the compiled step runs; traced ones by `eqx.error_if`).
        """
        x = check_finite(x, "MPC.step: x")
        us_warm = check_finite(us_warm, "MPC.step: us_warm")
        return self._step(x, us_warm, t)

    @eqx.filter_jit
    def _step(self, x, us_warm, t):
        # No checks in the compiled step (no host callbacks): it stays in the persistent cache.
        settings = (self.iterations, 1e-9, 1e-4, 10.0, 1e10)
        res = _ilqr_unchecked(self.model, self.cost, x, us_warm, t, settings, _ALPHAS)
        warm = jnp.concatenate([res.us[1:], res.us[-1:]])
        return res.us[0], warm, res.cost


class ClosedLoopResult(NamedTuple):
    """What `closed_loop` gives."""

    __repr__ = result_repr

    xs: Float[Array, "N1 n"]
    """Plant states x_0..x_N."""
    us: Float[Array, "N m"]
    """Applied controls."""
    predicted_costs: Float[Array, " N"]
    """The controller's predicted horizon cost at each step."""
    step_times: Float[Array, " N"]
    """Wall time (s) of each control step, compilation excluded (first step re-timed)."""
    compile_time: float
    """Wall time (s) of the first call, compilation included."""


def closed_loop(
    controller: MPC,
    plant,
    x0: Float[Array, " n"],
    steps: int,
    *,
    key: PRNGKeyArray,
    disturbance=0.0,
    us_warm: Float[Array, "H m"] | None = None,
) -> ClosedLoopResult:
    """Gives the closed-loop run of an MPC controller against a (mismatched) plant.

    Each step: the controller sees the plant state, returns a control; the plant
    `plant(x, u)` advances, then the state receives additive Gaussian noise of standard
    deviation `disturbance` (scalar or `(n,)`, a random disturbance).

    **Arguments:** `controller` an `MPC`; `plant(x, u) -> x_next` the "true" system;
    `x0` `(n,)`; `steps` >= 1; `key` (keyword) PRNG key for the disturbances;
    `us_warm` the first warm start (default zeros).

    **Returns:** a `ClosedLoopResult`.
    """
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"closed_loop: steps must be an int >= 1, got {steps!r}")
    if us_warm is None:
        m = controller.model.control_dim  # pyright: ignore[reportAttributeAccessIssue]
        us_warm = jnp.zeros((controller.horizon, m), x0.dtype)
    warm: jax.Array = us_warm
    noise = jax.random.normal(key, (steps, x0.shape[0]), x0.dtype) * jnp.asarray(disturbance)
    plant_step = eqx.filter_jit(lambda x, u, w: plant(x, u) + w)

    t_start = time.perf_counter()
    jax.block_until_ready(controller.step(x0, warm, jnp.asarray(0)))
    compile_time = time.perf_counter() - t_start

    x = x0
    xs, us, costs, times = [x0], [], [], []
    for t in range(steps):
        t_start = time.perf_counter()
        # t as an array: a Python int would be static under filter_jit (a recompile per step).
        u, warm, J = controller.step(x, warm, jnp.asarray(t))
        u = jax.block_until_ready(u)
        times.append(time.perf_counter() - t_start)
        x = plant_step(x, u, noise[t])
        xs.append(x)
        us.append(u)
        costs.append(J)
    return ClosedLoopResult(
        xs=jnp.stack(xs),
        us=jnp.stack(us),
        predicted_costs=jnp.stack(costs),
        step_times=jnp.asarray(times),
        compile_time=compile_time,
    )
