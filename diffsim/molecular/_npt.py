"""Constant pressure: an isotropic MTK barostat with Langevin thermostats (NPT).

The equations of motion are Martyna, Tobias and Klein's (J. Chem. Phys. 101, 4177,
1994) for an isotropic cell, with the particle and barostat momenta each coupled to a
Langevin bath in place of Nose-Hoover chains (a "Langevin piston"):

    dr/dt    = v + (p_eps / W) r
    m dv/dt  = F - (1 + d / N_f) (p_eps / W) m v        - gamma m v + noise
    dV/dt    = d V p_eps / W
    dp_eps/dt = (1 + d / N_f) sum m v^2 - dU/d(eps) - d P V - gamma_b p_eps + noise

where dU/d(eps) is the isotropic strain derivative of the energy (positions and cell
scaled together: the virial, including any explicit volume dependence such as a tail
correction). Its stationary distribution is exp(-(U + KE + P V) / kT) dV dr dp, the
isothermal-isobaric ensemble. The step is the time-reversible splitting of Tuckerman
et al. (J. Phys. A 39, 5629, 2006) wrapped in half-step Ornstein-Uhlenbeck kicks
(OBABO), with the exact exponential sub-flows of r and v.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_positive, is_concrete
from .._custom_types import Array, ArrayLike, Float, PRNGKeyArray, Scalar
from ._integrators import _check_dt
from ._neighbors import NeighborList, neighbor_list
from ._potentials import AbstractEnergy
from ._space import AbstractSpace, PeriodicBox, TriclinicBox, box_widths


class NPTState(eqx.Module):
    """The state of constant-pressure MD.

    - `positions`, `velocities`, `forces`: shape `(n, d)` (positions unwrapped).
    - `potential_energy`: scalar; `strain_derivative`: dU/d(eps), the isotropic virial.
    - `space`: the current periodic cell; `barostat_momentum`: p_eps (energy x time).
    - `neighbors`: a `NeighborList` (its `space` is the cell of its last build) or `None`.
    """

    positions: Float[Array, "n d"]
    velocities: Float[Array, "n d"]
    forces: Float[Array, "n d"]
    potential_energy: Array
    strain_derivative: Array
    space: AbstractSpace
    barostat_momentum: Array
    neighbors: NeighborList | None


def scale_space(space: AbstractSpace, factor) -> AbstractSpace:
    """Gives the periodic cell scaled isotropically by `factor` (lengths times factor)."""
    if isinstance(space, PeriodicBox):
        return PeriodicBox(space.lengths * factor)
    if isinstance(space, TriclinicBox):
        return TriclinicBox(space.cell * factor)
    raise ValueError(f"NPT needs a periodic cell, got {type(space).__name__}")


def _volume(space):
    return space.volume()  # pyright: ignore[reportAttributeAccessIssue]


def _energy_forces_virial(energy_fn, positions, space, neighbors):
    """(E, F, dU/d eps) in one backward pass; zeros if the list overflowed."""

    def u(r, eps):
        s = jnp.exp(eps)
        return energy_fn(r * s, neighbors, space=scale_space(space, s)).astype(r.dtype)

    def compute():
        e, (g, w) = jax.value_and_grad(u, argnums=(0, 1))(positions, jnp.zeros((), positions.dtype))
        return e, -g, w

    if neighbors is None:
        return compute()
    z = jnp.zeros((), positions.dtype)
    return jax.lax.cond(neighbors.overflow, lambda: (z, jnp.zeros_like(positions), z), compute)


def _update_neighbors(nbrs, positions, space):
    """The list valid at `positions` in `space`, rebuilt (in the new cell) when needed.

    A pair outside the list at the last build (distance > rc + skin in the cell of that
    build) is at least s (rc + skin) - 2 max|u| apart now, where s scales the old cell to
    the new one and u is each atom's motion beyond that affine scaling: rebuild when this
    bound falls to rc.
    """
    if nbrs is None:
        return None
    assert nbrs.reference is not None  # a list that was built
    d = positions.shape[1]
    s = (_volume(space) / _volume(nbrs.space).astype(positions.dtype)) ** (1.0 / d)
    u = space.displacement(positions, s * nbrs.reference.astype(positions.dtype))
    umax = jnp.sqrt(jnp.max(jnp.sum(u * u, axis=-1)))
    need = 2.0 * umax >= s * (nbrs.cutoff + nbrs.skin) - nbrs.cutoff

    def rebuild():
        new = eqx.tree_at(lambda l: l.space, nbrs, space).rebuild(positions)
        if nbrs.grid is None:
            return new
        # Cells narrower than (cutoff + skin) / reach would miss pairs: flag it.
        widths = box_widths(space)
        assert widths is not None  # NPT runs in a periodic cell
        narrow = jnp.any(
            widths / jnp.asarray(nbrs.grid, widths.dtype) * nbrs.reach
            < (nbrs.cutoff + nbrs.skin) * (1 - 1e-12)
        )
        return eqx.tree_at(lambda l: l.overflow, new, new.overflow | narrow)

    return jax.lax.cond(need, rebuild, lambda: nbrs)


def _sinhc(x):
    small = jnp.abs(x) < 1e-4
    xs = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 + x * x / 6.0, jnp.sinh(xs) / xs)


@eqx.filter_jit
def _init_state(energy_fn, positions, space, velocities, momentum, neighbors):
    if neighbors is not None:
        neighbors = _update_neighbors(neighbors, positions, space)
    e, f, w = _energy_forces_virial(energy_fn, positions, space, neighbors)
    return NPTState(positions, velocities, f, e, w, space, momentum, neighbors)


class NPT(eqx.Module):
    """Isothermal-isobaric MD: an isotropic MTK barostat with Langevin thermostats.

    A step for `diffsim.rollout` whose input `x` is a PRNG key (so `simulate(...,
    key=...)` runs it); the cell scales isotropically. See the module docstring for the
    equations. The energy must accept `space=` (every diffsim energy does), since the
    pressure comes from its strain derivative.

    **Arguments:**

    - `energy_fn`: `energy_fn(positions, neighbors, *, space) -> scalar` (energy units).
    - `dt`: time step, > 0.
    - `kT`: temperature (energy units), > 0.
    - `pressure`: external pressure P (energy / length^d).
    - `gamma`: particle friction (1 / time), >= 0.
    - `barostat_time`: tau_b, the barostat's period scale (time), > 0; the barostat
      mass is W = (N_f + d) kT tau_b^2.
    - `barostat_gamma`: friction on p_eps (1 / time), >= 0.
    - `mass`: scalar or shape `(n,)`.

    **Raises:** `ValueError` for a non-positive `dt`, `kT` or `barostat_time`, or a
    negative friction.

    **Example:**

    ```python
    npt = md.NPT(energy, dt=0.005, kT=2.0, pressure=1.5)
    state = npt.init(positions, box, velocities)
    state, outs = md.simulate(npt, state, 10_000, key=jax.random.key(0))
    outs["volume"], outs["pressure"]
    ```
    """

    energy_fn: Callable
    dt: ArrayLike
    kT: ArrayLike
    pressure: ArrayLike
    gamma: ArrayLike = 1.0
    barostat_time: ArrayLike = 1.0
    barostat_gamma: ArrayLike = 1.0
    mass: ArrayLike = 1.0
    stochastic = True  # simulate() gives the step PRNG keys

    def __check_init__(self):
        _check_dt(self.dt)
        for name in ("kT", "barostat_time"):
            if is_concrete(getattr(self, name)):
                check_positive(getattr(self, name), f"NPT: {name}", scalar=True)
        for name in ("gamma", "barostat_gamma"):
            if is_concrete(getattr(self, name)):
                check_positive(getattr(self, name), f"NPT: {name}", allow_zero=True)

    def init(
        self,
        positions: Float[Array, "n d"],
        space: AbstractSpace,
        velocities: Float[Array, "n d"] | None = None,
        neighbors: NeighborList | None = None,
        *,
        barostat_momentum: float | Array = 0.0,
    ) -> NPTState:
        """Gives the state at `positions` in the periodic cell `space` (forces, virial).

        **Raises:** `ValueError` for a non-periodic space or mismatched shapes.
        """
        positions = jnp.asarray(positions)
        if positions.ndim != 2:
            raise ValueError(f"NPT.init: positions must have shape (n, d), got {positions.shape}")
        if not space.periodic:
            raise ValueError("NPT.init: space must be a periodic cell")
        v = jnp.zeros_like(positions) if velocities is None else jnp.asarray(velocities)
        if v.shape != positions.shape:
            raise ValueError(f"NPT.init: velocities {v.shape} vs positions {positions.shape}")
        p = jnp.asarray(barostat_momentum, positions.dtype)
        return _init_state(
            self.energy_fn, positions, space, v.astype(positions.dtype), p, neighbors
        )

    def restart(self, state: NPTState, neighbors: NeighborList) -> NPTState:
        """Gives `state` with a fresh, larger neighbour list built in its own cell
        (what `simulate` calls after an overflow)."""
        nbrs = neighbor_list(
            state.positions,
            state.space,
            neighbors.cutoff,
            skin=neighbors.skin,
            min_capacity=neighbors.capacity,
            min_cell_capacity=neighbors.cell_capacity,
        )
        return self.init(
            state.positions,
            state.space,
            state.velocities,
            nbrs,
            barostat_momentum=state.barostat_momentum,
        )

    def _barostat_mass(self, n, d, dtype):
        return jnp.asarray((n * d + d) * self.kT * self.barostat_time**2, dtype)

    def step(self, state: NPTState, x: PRNGKeyArray | None = None) -> tuple[NPTState, dict]:
        """One step; gives `(state, {"potential", "kinetic", "volume", "pressure"})`."""
        if x is None:
            raise ValueError("NPT.step needs a PRNG key as its input x")
        r, v, space = state.positions, state.velocities, state.space
        n, d = r.shape
        dtype = r.dtype
        dt = jnp.asarray(self.dt, dtype)
        kT = jnp.asarray(self.kT, dtype)
        m = jnp.asarray(self.mass, dtype)
        m = m[:, None] if m.ndim == 1 else m
        W = self._barostat_mass(n, d, dtype)
        alpha = 1.0 + d / (n * d)
        c = jnp.exp(-jnp.asarray(self.gamma, dtype) * dt / 2)
        cb = jnp.exp(-jnp.asarray(self.barostat_gamma, dtype) * dt / 2)
        k1, k2, k3, k4 = jax.random.split(x, 4)

        def thermostat(v, p, ka, kb):
            v = c * v + jnp.sqrt((1 - c * c) * kT / m) * jax.random.normal(ka, v.shape, dtype)
            p = cb * p + jnp.sqrt((1 - cb * cb) * W * kT) * jax.random.normal(kb, (), dtype)
            return v, p

        def g_eps(v, w, vol):
            return alpha * jnp.sum(m * v * v) - w - d * jnp.asarray(self.pressure, dtype) * vol

        def kick(v, f, p):
            a = alpha * p / W * dt / 2
            return v * jnp.exp(-a) + dt / 2 * f / m * jnp.exp(-a / 2) * _sinhc(a / 2)

        v, p = thermostat(v, state.barostat_momentum, k1, k2)
        p = p + dt / 2 * g_eps(v, state.strain_derivative, _volume(space))
        v = kick(v, state.forces, p)
        ve = p / W
        r = r * jnp.exp(ve * dt) + dt * v * jnp.exp(ve * dt / 2) * _sinhc(ve * dt / 2)
        space = scale_space(space, jnp.exp(ve * dt))
        nbrs = _update_neighbors(state.neighbors, r, space)
        e, f, w = _energy_forces_virial(self.energy_fn, r, space, nbrs)
        v = kick(v, f, p)
        vol = _volume(space)
        p = p + dt / 2 * g_eps(v, w, vol)
        v, p = thermostat(v, p, k3, k4)
        kinetic = 0.5 * jnp.sum(m * v * v)
        pressure = (2 * kinetic - w) / (d * vol)
        new = NPTState(r, v, f, e, w, space, p, nbrs)
        return new, {"potential": e, "kinetic": kinetic, "volume": vol, "pressure": pressure}


class LennardJonesTail(AbstractEnergy):
    """The Lennard-Jones long-range correction beyond `cutoff`, a function of volume only.

    E_tail = (8/3) pi N^2 / V epsilon sigma^3 [(sigma/rc)^9 / 3 - (sigma/rc)^3], the
    energy of the pairs beyond rc when g(r) = 1 there (3-D). Added to a truncated LJ
    energy it gives the standard tail-corrected energy; its strain derivative gives
    -dE_tail/dV = E_tail / V, which is the usual virial tail pressure minus the
    impulsive term (2 pi / 3) rho^2 rc^3 u(rc) of the truncation: the pressure
    correction of the truncated-potential ensemble (as NPT Monte Carlo uses it).

    **Arguments:** `n` atoms, `space` (periodic), `cutoff` rc, `sigma`, `epsilon`.
    """

    n: int = eqx.field(static=True)
    space: AbstractSpace
    cutoff: float = eqx.field(static=True)
    sigma: ArrayLike = 1.0
    epsilon: ArrayLike = 1.0

    def __check_init__(self):
        if not (math.isfinite(self.cutoff) and self.cutoff > 0):
            raise ValueError(f"LennardJonesTail: cutoff must be finite and > 0, got {self.cutoff}")

    def __call__(self, positions, neighbors=None, *, space=None, **params) -> Scalar:
        space = self.space if space is None else space
        if not space.periodic:
            raise ValueError("LennardJonesTail: needs a periodic space (a volume)")
        dtype = positions.dtype
        sr3 = (jnp.asarray(self.sigma, dtype) / self.cutoff) ** 3
        vol = _volume(space).astype(dtype)
        eps = jnp.asarray(self.epsilon, dtype)
        sig3 = jnp.asarray(self.sigma, dtype) ** 3
        return 8.0 / 3.0 * np.pi * self.n**2 / vol * eps * sig3 * (sr3**3 / 3.0 - sr3)
