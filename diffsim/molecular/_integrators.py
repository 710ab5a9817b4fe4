"""Integrators as rollout steps: `NVE` (velocity Verlet) and `Langevin` (BAOAB, NVT).

An integrator is a module with `init(positions, velocities, neighbors=None)` giving
an `MDState`, and `step(state, x) -> (state, out)` for `diffsim.rollout` (with `x`
unused for NVE, a PRNG key for Langevin). Each step updates the neighbour list (a
rebuild only when an atom has moved half the skin) and returns the potential and
kinetic energy as its output. `NVE.inverse` runs a step backwards, so
`rollout(nve.step, s0, length=T, grad=Reversible(nve.inverse))` differentiates a
trajectory in O(1) memory.

`simulate` runs a trajectory in chunks outside `jit` and checks, after each chunk,
the neighbour list's overflow flag (redoing the chunk with a reallocated list) and
the state for NaN.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from .._checks import check_positive, is_concrete, stop_int_gradients
from .._custom_types import Array, ArrayLike, Float, PRNGKeyArray
from .._rollout import BPTT, AbstractGradient, rollout
from ._neighbors import NeighborList, reallocate
from ._observables import check_positions


class MDState(eqx.Module):
    """The state of an MD trajectory.

    - `positions`, `velocities`, `forces`: shape `(n, d)`; positions are never wrapped.
    - `potential_energy`: scalar, at `positions`.
    - `neighbors`: a `NeighborList` or `None` (the dense path).
    """

    positions: Float[Array, "n d"]
    velocities: Float[Array, "n d"]
    forces: Float[Array, "n d"]
    potential_energy: Array
    neighbors: NeighborList | None


def _masses(mass, like):
    m = jnp.asarray(mass).astype(like.dtype)
    return m[:, None] if m.ndim == 1 else m


def _energy_forces(energy_fn, positions, neighbors, overflow_energy: float = 0.0):
    """(E, F) by one backward pass; (overflow_energy, 0) if the list overflowed (flagged)."""

    def compute():
        e, g = jax.value_and_grad(lambda r: energy_fn(r, neighbors))(positions)
        return e.astype(positions.dtype), -g

    if neighbors is None:
        return compute()
    # The energy function raises on an overflowed list; in a step we skip it instead and
    # leave the flag set, so `simulate` can redo the chunk with a bigger list.
    return jax.lax.cond(
        neighbors.overflow,
        lambda: (jnp.full((), overflow_energy, positions.dtype), jnp.zeros_like(positions)),
        compute,
    )


@eqx.filter_jit
def _init_state(energy_fn, positions, velocities, neighbors):
    if neighbors is not None:
        neighbors = neighbors.update(positions)
    e, f = _energy_forces(energy_fn, positions, neighbors)
    return MDState(positions, velocities, f, e, neighbors)


def _update(neighbors, positions):
    return None if neighbors is None else neighbors.update(positions)


class AbstractIntegrator(eqx.Module):
    """An MD integrator: `init` and `step` for `rollout`."""

    energy_fn: eqx.AbstractVar[Callable]
    dt: eqx.AbstractVar[float]

    def init(
        self,
        positions: Float[Array, "n d"],
        velocities: Float[Array, "n d"] | None = None,
        neighbors: NeighborList | None = None,
        *,
        floor: float = 0.1,
    ) -> MDState:
        """Gives the state at `positions` (zero velocities if `None`), forces evaluated.

        **Raises:** `ValueError` if shapes disagree, positions are not finite, or two
        atoms are closer than `floor` (checked over the list's pairs, or all pairs when
        the energy function has a `space`; 0 skips the check).
        """
        positions = jnp.asarray(positions)
        if positions.ndim != 2:
            raise ValueError(f"positions must have shape (n, d), got {positions.shape}")
        velocities = jnp.zeros_like(positions) if velocities is None else jnp.asarray(velocities)
        if velocities.shape != positions.shape:
            raise ValueError(
                f"velocities has shape {velocities.shape}, positions has {positions.shape}"
            )
        velocities = velocities.astype(positions.dtype)
        m = jnp.asarray(self.mass)  # pyright: ignore[reportAttributeAccessIssue]
        if m.ndim not in (0, 1) or (m.ndim == 1 and m.shape[0] != positions.shape[0]):
            raise ValueError(
                f"mass must be a scalar or have shape ({positions.shape[0]},), got {m.shape}"
            )
        if is_concrete(m):
            check_positive(m, "mass")
        if is_concrete(positions):
            if not np.all(np.isfinite(np.asarray(positions))):
                raise ValueError("positions contain NaN or inf")
            space = getattr(self.energy_fn, "space", None)
            space = neighbors.space if neighbors is not None else space
            if space is not None and floor > 0 and positions.shape[0] > 1:
                check_positions(positions, space, floor=floor, neighbors=neighbors)
        return _init_state(self.energy_fn, positions, velocities, neighbors)

    @abc.abstractmethod
    def step(self, state: MDState, x=None) -> tuple[MDState, dict]:
        """Advances one time step; gives `(state, {"potential", "kinetic"})`."""


class NVE(AbstractIntegrator):
    """Constant-energy (NVE) dynamics by velocity Verlet: symplectic, time-reversible,
    exactly invertible.

    Named for the ensemble, like JAX MD's `simulate.nve` (`diffsim.ode.VelocityVerlet` is
    the ODE solver for a separable system, not this neighbour-list MD step).

    **Arguments:**

    - `energy_fn`: `energy_fn(positions, neighbors) -> scalar` (energy units).
    - `dt`: the time step, > 0.
    - `mass`: scalar or shape `(n,)` (mass units); default 1.

    **Raises:** `ValueError` if `dt <= 0`.

    **Example:**

    ```python
    nve = NVE(energy, dt=0.005)
    s0 = nve.init(positions, velocities, nbrs)
    sT, outs = rollout(nve.step, s0, length=1000, grad=Reversible(nve.inverse))
    ```
    """

    energy_fn: Callable
    dt: float
    mass: ArrayLike = 1.0

    def __check_init__(self):
        _check_dt(self.dt)

    def step(self, state, x=None):
        dt = jnp.asarray(self.dt, state.positions.dtype)
        m = _masses(self.mass, state.positions)
        v_half = state.velocities + 0.5 * dt * state.forces / m
        r = state.positions + dt * v_half
        nbrs = _update(state.neighbors, r)
        e, f = _energy_forces(self.energy_fn, r, nbrs)
        v = v_half + 0.5 * dt * f / m
        new = MDState(r, v, f, e, nbrs)
        return new, {"potential": e, "kinetic": _kinetic(v, m)}

    def inverse(self, state, x=None):
        """Gives the state one step earlier: `step(inverse(s)) == s` up to round-off."""
        dt = jnp.asarray(self.dt, state.positions.dtype)
        m = _masses(self.mass, state.positions)
        v_half = state.velocities - 0.5 * dt * state.forces / m
        r = state.positions - dt * v_half
        nbrs = _update(state.neighbors, r)
        e, f = _energy_forces(self.energy_fn, r, nbrs)
        v = v_half - 0.5 * dt * f / m
        return MDState(r, v, f, e, nbrs)


class Langevin(AbstractIntegrator):
    """Langevin dynamics (NVT) by the BAOAB splitting of Leimkuhler and Matthews.

    B: v += dt/2 F/m; A: r += dt/2 v; O: v = c v + sqrt((1 - c^2) kT/m) xi with
    c = exp(-gamma dt); A; B. The step input `x` is a PRNG key: pass
    `xs=jax.random.split(key, T)` to `rollout`.

    **Arguments:**

    - `energy_fn`, `dt`, `mass`: as `NVE`.
    - `kT`: the target temperature (energy units), >= 0.
    - `gamma`: the friction (1 / time units), >= 0.

    **Raises:** `ValueError` if `dt <= 0`, `kT < 0` or `gamma < 0`.
    """

    energy_fn: Callable
    dt: float
    kT: float
    gamma: float = 1.0
    mass: ArrayLike = 1.0

    def __check_init__(self):
        _check_dt(self.dt)
        for name in ("kT", "gamma"):
            check_positive(getattr(self, name), f"Langevin: {name}", allow_zero=True)

    def step(self, state, x: PRNGKeyArray | None = None):
        if x is None:
            raise ValueError("Langevin.step needs a PRNG key as its input x")
        dtype = state.positions.dtype
        dt = jnp.asarray(self.dt, dtype)
        m = _masses(self.mass, state.positions)
        c = jnp.exp(-jnp.asarray(self.gamma, dtype) * dt)
        v = state.velocities + 0.5 * dt * state.forces / m
        r = state.positions + 0.5 * dt * v
        xi = jax.random.normal(x, v.shape, dtype)
        v = c * v + jnp.sqrt((1 - c * c) * jnp.asarray(self.kT, dtype) / m) * xi
        r = r + 0.5 * dt * v
        nbrs = _update(state.neighbors, r)
        e, f = _energy_forces(self.energy_fn, r, nbrs)
        v = v + 0.5 * dt * f / m
        return MDState(r, v, f, e, nbrs), {"potential": e, "kinetic": _kinetic(v, m)}


def _kinetic(v, m):
    return 0.5 * jnp.sum(m * v * v)


def _check_dt(dt):
    if is_concrete(dt):
        check_positive(dt, "dt", scalar=True)


# --- the driver ----------------------------------------------------------------------


_OVERFLOW, _NONFINITE = 1, 2


@eqx.filter_jit
def _chunk(integrator, state, key, length, grad):
    """Runs one chunk on the device; gives `(state, outs, status, key)`, where `status` (an
    int32 scalar: `_OVERFLOW` | `_NONFINITE` bits) is all the host reads back and `key` the
    PRNG key for the next chunk (`None` without one)."""
    # Integer leaves (the neighbour pairs) carry no gradient; under jax.grad they can
    # still arrive as perturbed tracers, which the custom-VJP strategies reject.
    state = stop_int_gradients(state)
    xs = None
    if key is not None:
        key, sub = jax.random.split(key)
        xs = jax.random.split(sub, length)
    new, out = rollout(integrator.step, state, xs, length=length if xs is None else None, grad=grad)
    # Positions, velocities, forces and every step's energies: a blown-up system can keep
    # finite positions with infinite kinetic energy.
    leaves = [new.positions, new.velocities, new.forces, *jax.tree.leaves(out)]
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in leaves]))
    status = jnp.where(finite, 0, _NONFINITE).astype(jnp.int32)
    if new.neighbors is not None:
        status = status | jnp.where(new.neighbors.overflow, _OVERFLOW, 0).astype(jnp.int32)
    return new, out, status, key


def _read_status(status) -> int:
    # The one device-to-host read of a chunk, made explicit (it passes
    # jax.transfer_guard("disallow")); under jax.grad the status is a tracer whose primal
    # value is concrete.
    if isinstance(status, jax.core.Tracer):
        return int(status)
    return int(jax.device_get(status))


def simulate(
    integrator: Any,
    state: Any,
    steps: int,
    *,
    key: PRNGKeyArray | None = None,
    chunk: int = 1000,
    grad: AbstractGradient = BPTT(),
    max_reallocations: int = 10,
) -> tuple[eqx.Module, dict]:
    """Gives the state after `steps` steps and the per-step outputs, never overflowed.

    Runs `rollout` over chunks of `chunk` steps; after each chunk it checks the
    neighbour list's overflow flag (if set, it reallocates a bigger list at the chunk's
    start and redoes the chunk) and the state for NaN. Both checks are computed on the
    device inside the chunk's compiled call; the host reads one int32 per chunk, and the
    outputs are concatenated once at the end. Differentiable with `jax.grad`
    (not under `jit`: the checks need concrete values); `grad` picks the strategy of
    each chunk's rollout (`Reversible(integrator.inverse)` for `NVE`).

    **Arguments:**

    - `integrator`: `NVE(...)`, `Langevin(...)` or `NPT(...)`.
    - `state`: from `integrator.init(...)` (an `MDState`, or an `NPTState` for `NPT`).
    - `steps`: number of steps, >= 0.
    - `key`: PRNG key, required by `Langevin` (keyword-only).
    - `chunk`: steps per jitted rollout between checks.
    - `grad`: gradient strategy for each chunk.
    - `max_reallocations`: give up (raise) after this many reallocations of one chunk.

    **Returns:** `(final_state, outs)` with `outs["potential"]`, `outs["kinetic"]` of
    shape `(steps,)`.

    **Raises:** `ValueError` for `steps < 0`, `chunk < 1`, a missing key, NaN in the
    state (naming the chunk), or an overflow not cured by reallocation.
    """
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"simulate: steps must be an int >= 0, got {steps!r}")
    if chunk < 1:
        raise ValueError(f"simulate: chunk must be >= 1, got {chunk}")
    # Stochastic steps (Langevin, NPT) take a PRNG key per step as their input.
    needs_key = isinstance(integrator, Langevin) or getattr(integrator, "stochastic", False)
    if needs_key and key is None:
        raise ValueError(f"simulate: {type(integrator).__name__} needs key=jax.random.key(...)")
    key = key if needs_key else None
    outs = []
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        for attempt in range(max_reallocations + 1):
            # A redone chunk starts from the same key, so it draws the same noise.
            new, out, status, next_key = _chunk(integrator, state, key, n, grad)
            status = _read_status(status)
            if not status & _OVERFLOW:
                break
            if attempt == max_reallocations:
                raise ValueError(
                    f"simulate: neighbour list still overflows after {max_reallocations} "
                    f"reallocations in steps {done}..{done + n}"
                )
            # The overflowed list still counted the pairs it could not hold: size by it.
            nbrs = reallocate(new.neighbors, state.positions)
            restart = getattr(integrator, "restart", None)
            if restart is not None:  # a state with more than positions and velocities (NPT)
                state = restart(state, nbrs)
            else:
                state = integrator.init(state.positions, state.velocities, nbrs)
        if status & _NONFINITE:
            raise ValueError(
                f"simulate: NaN or inf in the state or the energies in chunk "
                f"{done // chunk + 1} (steps {done}..{done + n}); reduce dt or check for "
                "overlapping atoms"
            )
        state, key = new, next_key
        outs.append(out)
        done += n
    if not outs:
        return state, {"potential": jnp.zeros((0,)), "kinetic": jnp.zeros((0,))}
    if len(outs) == 1:
        return state, outs[0]
    return state, jax.tree.map(lambda *a: jnp.concatenate(a), *outs)
