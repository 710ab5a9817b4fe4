"""Energy minimisation: FIRE (as JAX MD's `fire_descent`) and L-BFGS (optax's `lbfgs`).

A minimiser is a value with `init(positions, neighbors=None)` and
`step(state, x=None) -> (state, out)`, so it runs under `diffsim.rollout` like an
integrator; `minimize(minimizer, positions, neighbors, fmax=...)` runs it to a force
tolerance in jitted chunks, checking the neighbour list's overflow flag after each
chunk (reallocating and continuing from the last good positions) and the state for NaN.
Positions move in a fixed space (free or periodic cell); the energy is any diffsim
energy `energy_fn(positions, neighbors)`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._checks import check_positive, is_concrete
from .._custom_types import Array, Float
from ._integrators import _energy_forces
from ._neighbors import NeighborList, reallocate


def _update(neighbors, positions):
    return None if neighbors is None else neighbors.update(positions)


def _value_and_force(energy_fn, positions, neighbors):
    """(E, F); (inf, 0) if the list overflowed, so `minimize` can reallocate and redo."""
    return _energy_forces(energy_fn, positions, neighbors, overflow_energy=math.inf)


class FIREState(eqx.Module):
    """The state of FIRE descent: positions, velocities, forces, energy, step size, mixing,
    steps with positive power, and the neighbour list."""

    positions: Float[Array, "n d"]
    velocities: Float[Array, "n d"]
    forces: Float[Array, "n d"]
    energy: Array
    dt: Array
    alpha: Array
    n_pos: Array
    neighbors: NeighborList | None


class LBFGSState(eqx.Module):
    """The state of L-BFGS: positions, energy, forces, optax's state, the neighbour list."""

    positions: Float[Array, "n d"]
    energy: Array
    forces: Float[Array, "n d"]
    opt_state: Any
    neighbors: NeighborList | None


class AbstractMinimizer(eqx.Module):
    """A minimiser: `init(positions, neighbors)` and `step(state, x=None)` for `rollout`."""

    energy_fn: eqx.AbstractVar[Callable]

    @abc.abstractmethod
    def init(self, positions, neighbors=None) -> Any:
        """Gives the starting state at `positions` (energy and forces evaluated)."""

    @abc.abstractmethod
    def step(self, state, x=None) -> tuple[Any, dict]:
        """One iteration; gives `(state, {"energy", "fmax"})`."""


class FIRE(AbstractMinimizer):
    """FIRE descent (Bitzek et al. 2006), step for step JAX MD's `fire_descent`.

    Velocity Verlet with a mixing of the velocity towards the force direction; the
    step grows by `f_inc` (up to `dt_max`) after `n_min` steps of positive power
    F.v and shrinks by `f_dec`, with the velocity zeroed, when the power turns negative.

    **Arguments:**

    - `energy_fn`: `energy_fn(positions, neighbors) -> scalar`.
    - `dt_start`, `dt_max`: initial and largest step (time units), > 0.
    - `n_min`, `f_inc`, `f_dec`, `alpha_start`, `f_alpha`: JAX MD's defaults.
    - `mass`: scalar (mass units).

    **Raises:** `ValueError` for a non-positive `dt_start`, `dt_max` or `mass`.

    **Example:**

    ```python
    result = minimize(FIRE(energy), positions, fmax=1e-6)
    result.energy, result.positions
    ```
    """

    energy_fn: Callable
    dt_start: float = 0.1
    dt_max: float = 0.4
    n_min: int = eqx.field(default=5, static=True)
    f_inc: float = 1.1
    f_dec: float = 0.5
    alpha_start: float = 0.1
    f_alpha: float = 0.99
    mass: float = 1.0

    def __check_init__(self):
        for name in ("dt_start", "dt_max", "mass"):
            v = getattr(self, name)
            if is_concrete(v):
                check_positive(v, f"FIRE: {name}", scalar=True)

    def init(self, positions, neighbors=None):
        positions = jnp.asarray(positions)
        neighbors = _update(neighbors, positions)
        e, f = _value_and_force(self.energy_fn, positions, neighbors)
        dtype = positions.dtype
        return FIREState(
            positions,
            jnp.zeros_like(positions),
            f,
            e,
            jnp.asarray(self.dt_start, dtype),
            jnp.asarray(self.alpha_start, dtype),
            jnp.zeros((), jnp.int32),
            neighbors,
        )

    def step(self, state, x=None):
        dtype = state.positions.dtype
        m = jnp.asarray(self.mass, dtype)
        dt = state.dt
        r = state.positions + dt * state.velocities + 0.5 * dt**2 * state.forces / m
        nbrs = _update(state.neighbors, r)
        e, f = _value_and_force(self.energy_fn, r, nbrs)
        v = state.velocities + 0.5 * dt * (state.forces + f) / m
        f_norm = jnp.sqrt(jnp.sum(f * f))
        v_norm = jnp.sqrt(jnp.sum(v * v))
        power = jnp.sum(f * v)
        # A zero force (already at a stationary point) must not divide by zero.
        safe = jnp.where(f_norm > 0, f_norm, 1.0)
        v = v + state.alpha * (f * v_norm / safe - v)
        n_pos = jnp.where(power >= 0, state.n_pos + 1, 0)
        grow = n_pos > self.n_min
        dt_new = jnp.where(
            power > 0,
            jnp.where(grow, jnp.minimum(dt * self.f_inc, self.dt_max), dt),
            dt * self.f_dec,
        )
        alpha = jnp.where(
            power > 0,
            jnp.where(grow, state.alpha * self.f_alpha, state.alpha),
            jnp.asarray(self.alpha_start, dtype),
        )
        v = v * (power >= 0)
        new = FIREState(r, v, f, e, dt_new.astype(dtype), alpha.astype(dtype), n_pos, nbrs)
        return new, {"energy": e, "fmax": _fmax(f)}


class LBFGS(AbstractMinimizer):
    """L-BFGS with a zoom line search (strong Wolfe), through `optax.lbfgs`.

    The line search evaluates the energy with the neighbour list updated at each trial
    point (`nbrs.update`, a rebuild only if needed), so a long trial step never sees a
    stale list.

    **Arguments:**

    - `energy_fn`: `energy_fn(positions, neighbors) -> scalar`.
    - `memory_size`: number of stored curvature pairs, >= 1.
    - `max_linesearch_steps`: iterations of the zoom line search, >= 1.

    **Example:** `minimize(LBFGS(energy), positions, fmax=1e-8)`.
    """

    energy_fn: Callable
    memory_size: int = eqx.field(default=10, static=True)
    max_linesearch_steps: int = eqx.field(default=30, static=True)

    def __check_init__(self):
        if self.memory_size < 1 or self.max_linesearch_steps < 1:
            raise ValueError(
                f"LBFGS: memory_size and max_linesearch_steps must be >= 1, got "
                f"{self.memory_size}, {self.max_linesearch_steps}"
            )

    def _optimizer(self):
        return optax.lbfgs(
            memory_size=self.memory_size,
            linesearch=optax.scale_by_zoom_linesearch(
                max_linesearch_steps=self.max_linesearch_steps
            ),
        )

    def init(self, positions, neighbors=None):
        positions = jnp.asarray(positions)
        neighbors = _update(neighbors, positions)
        e, f = _value_and_force(self.energy_fn, positions, neighbors)
        return LBFGSState(positions, e, f, self._optimizer().init(positions), neighbors)

    def step(self, state, x=None):
        opt = self._optimizer()
        nbrs = state.neighbors

        def value_fn(r):
            return _value_and_force(self.energy_fn, r, _update(nbrs, r))[0]

        updates, opt_state = opt.update(
            -state.forces,
            state.opt_state,
            state.positions,
            value=state.energy,
            grad=-state.forces,
            value_fn=value_fn,
        )
        r = jnp.asarray(optax.apply_updates(state.positions, updates))
        nbrs = _update(nbrs, r)
        e, f = _value_and_force(self.energy_fn, r, nbrs)
        return LBFGSState(r, e, f, opt_state, nbrs), {"energy": e, "fmax": _fmax(f)}


def _fmax(forces):
    return jnp.sqrt(jnp.max(jnp.sum(forces * forces, axis=-1)))


class MinimizeResult(NamedTuple):
    """What `minimize` gives."""

    positions: Array
    """Shape `(n, d)`: the relaxed positions (unwrapped)."""
    energy: Array
    """The energy at `positions`."""
    forces: Array
    """Shape `(n, d)`: the forces at `positions`."""
    fmax: float
    """The largest force norm on one atom at `positions`."""
    steps: int
    """Iterations taken."""
    converged: bool
    """Whether `fmax <= fmax` was reached within `max_steps`."""
    energies: Array
    """Shape `(steps,)`: the energy after each iteration."""
    neighbors: NeighborList | None
    """The neighbour list valid at `positions` (or `None`)."""


@eqx.filter_jit
def _run_chunk(minimizer, state, fmax, length):
    # Stop early inside the chunk once converged: later steps repeat the last state.
    def body(carry, _):
        s, done = carry
        new, out = minimizer.step(s)
        keep = done | _overflowed(s)
        new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), s, new)
        f = _fmax(new.forces)
        return (new, done | ((f <= fmax) & ~_overflowed(new))), {
            "energy": new.energy,
            "fmax": f,
            "active": ~keep,
        }

    done0 = _fmax(state.forces) <= fmax
    (state, _), outs = jax.lax.scan(body, (state, done0), None, length=length)
    return state, outs


def _overflowed(state):
    nbrs = state.neighbors
    return jnp.asarray(False) if nbrs is None else nbrs.overflow


def minimize(
    minimizer: AbstractMinimizer,
    positions: Float[Array, "n d"],
    neighbors: NeighborList | None = None,
    *,
    fmax: float = 1e-6,
    max_steps: int = 10_000,
    chunk: int = 500,
    max_reallocations: int = 10,
) -> MinimizeResult:
    """Gives the positions minimising `minimizer.energy_fn`, to a force tolerance.

    Runs `minimizer.step` in jitted chunks of `chunk` iterations (each stops early
    once the largest atomic force norm is at most `fmax`), until converged or
    `max_steps`. After each chunk it checks the neighbour list: if it overflowed, the
    chunk restarts from its last good state with a reallocated list.

    **Arguments:**

    - `minimizer`: `FIRE(energy_fn)` or `LBFGS(energy_fn)`.
    - `positions`: shape `(n, d)` (length units), finite.
    - `neighbors`: a `NeighborList` built for `positions`, or `None` (dense energy).
    - `fmax`: force tolerance (energy / length), > 0.
    - `max_steps`: most iterations, >= 0; `chunk`: iterations per jitted call, >= 1.

    **Returns:** a `MinimizeResult` (`positions`, `energy`, `forces`, `fmax`, `steps`,
    `converged`, `energies`, `neighbors`); not converging is reported, not raised.

    **Raises:** `ValueError` for bad arguments, non-finite positions, NaN during the
    descent, or an overflow not cured by `max_reallocations` reallocations.

    **Example:**

    ```python
    energy = md.lennard_jones(md.FreeSpace(), cutoff=md.NoCutoff())
    res = md.minimize(md.FIRE(energy), positions, fmax=1e-8)
    ```
    """
    positions = jnp.asarray(positions)
    if positions.ndim != 2:
        raise ValueError(f"minimize: positions must have shape (n, d), got {positions.shape}")
    if not np.all(np.isfinite(np.asarray(positions))):
        raise ValueError("minimize: positions contain NaN or inf")
    if not (np.isfinite(fmax) and fmax > 0):
        raise ValueError(f"minimize: fmax must be finite and > 0, got {fmax}")
    if not isinstance(max_steps, (int, np.integer)) or max_steps < 0:
        raise ValueError(f"minimize: max_steps must be an int >= 0, got {max_steps!r}")
    if chunk < 1:
        raise ValueError(f"minimize: chunk must be >= 1, got {chunk}")
    state = minimizer.init(positions, neighbors)
    if state.neighbors is not None and bool(state.neighbors.overflow):
        state = minimizer.init(positions, reallocate(state.neighbors, positions))
    energies = []
    steps = 0
    while steps < max_steps and float(_fmax(state.forces)) > fmax:
        n = min(chunk, max_steps - steps)
        for attempt in range(max_reallocations + 1):
            new, outs = _run_chunk(minimizer, state, fmax, n)
            if new.neighbors is None or not bool(new.neighbors.overflow):
                break
            if attempt == max_reallocations:
                raise ValueError(
                    f"minimize: neighbour list still overflows after {max_reallocations} "
                    "reallocations"
                )
            # Restart from the last state before the overflow with a bigger list.
            nbrs = reallocate(new.neighbors, new.positions)
            state = minimizer.init(new.positions, nbrs)
        active = np.asarray(outs["active"])
        taken = int(active.sum())
        if not np.all(np.isfinite(np.asarray(new.positions))) or not np.isfinite(float(new.energy)):
            raise ValueError(
                f"minimize: NaN or inf after {steps + taken} iterations; check for "
                "overlapping atoms or reduce FIRE's dt_max"
            )
        energies.append(np.asarray(outs["energy"])[active])
        state = new
        steps += taken
        if taken < n:
            break
    f = float(_fmax(state.forces))
    return MinimizeResult(
        state.positions,
        state.energy,
        state.forces,
        f,
        steps,
        f <= fmax,
        jnp.asarray(np.concatenate(energies) if energies else np.zeros((0,))),
        state.neighbors,
    )
