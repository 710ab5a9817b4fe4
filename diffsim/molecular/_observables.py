"""Observables: kinetic energy, temperature, stress and pressure, g(r), MSD; input checks."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import is_concrete
from .._custom_types import Array, ArrayLike, Float
from ._neighbors import NeighborList, all_pairs
from ._space import AbstractSpace, FreeSpace, exact_matmul


def kinetic_energy(velocities: Float[Array, "n d"], mass: ArrayLike = 1.0) -> Array:
    """Gives sum_i m_i |v_i|^2 / 2 (energy units); `mass` scalar or shape `(n,)`."""
    m = jnp.asarray(mass).astype(velocities.dtype)
    m = m[:, None] if m.ndim == 1 else m
    return 0.5 * jnp.sum(m * velocities * velocities)


def temperature(
    velocities: Float[Array, "n d"], mass: ArrayLike = 1.0, *, dof: int | None = None
) -> Array:
    """Gives the instantaneous temperature kT = 2 KE / dof (energy units, k_B = 1).

    `dof` defaults to `n d` (no constraint removed; pass `n d - d` for a system whose
    total momentum is held at zero).
    """
    dof = velocities.size if dof is None else dof
    if dof <= 0:
        raise ValueError(f"temperature: dof must be > 0, got {dof}")
    return 2.0 * kinetic_energy(velocities, mass) / dof


@eqx.filter_jit
def stress(
    energy_fn,
    positions: Float[Array, "n d"],
    space: AbstractSpace,
    neighbors: NeighborList | None = None,
    *,
    velocities: Float[Array, "n d"] | None = None,
    mass: ArrayLike = 1.0,
) -> Float[Array, "d d"]:
    """Gives the stress tensor (1/V) dE/d(strain) - (1/V) sum_i m_i v_i v_i^T.

    The strain derivative deforms positions and box together, r -> (1 + e) r, and
    differentiates the energy at e = 0 (symmetrised). ASE's sign convention:
    `atoms.get_stress(voigt=False, include_ideal_gas=True)`; pressure is -tr / d.

    **Raises:** `ValueError` in free space (no volume).
    """
    if isinstance(space, FreeSpace) or not space.periodic:
        raise ValueError("stress: needs a periodic space (a volume); got free space")
    d = positions.shape[1]
    eye = jnp.eye(d, dtype=positions.dtype)

    def strained(e):
        F = eye + e
        return energy_fn(exact_matmul(positions, F.T), neighbors, space=space.deform(F))

    g = jax.grad(strained)(jnp.zeros((d, d), positions.dtype))
    volume = space.volume().astype(positions.dtype)
    s = 0.5 * (g + g.T) / volume
    if velocities is not None:
        m = jnp.asarray(mass).astype(positions.dtype)
        m = m[:, None] if m.ndim == 1 else m
        s = s - exact_matmul((m * velocities).T, velocities) / volume
    return s


def pressure(
    energy_fn,
    positions: Float[Array, "n d"],
    space: AbstractSpace,
    neighbors: NeighborList | None = None,
    *,
    velocities: Float[Array, "n d"] | None = None,
    mass: ArrayLike = 1.0,
) -> Array:
    """Gives the pressure -tr(stress) / d (the virial plus, with velocities, the kinetic part)."""
    s = stress(energy_fn, positions, space, neighbors, velocities=velocities, mass=mass)
    return -jnp.trace(s) / positions.shape[1]


@eqx.filter_jit
def rdf(
    positions: Float[Array, "n d"],
    space: AbstractSpace,
    *,
    r_max: float,
    bins: int = 100,
    width: float | None = None,
) -> tuple[Array, Array]:
    """Gives the radial distribution function g(r) at bin centres, from all pairs.

    **Arguments:**

    - `positions`: shape `(n, d)`; a periodic `space` gives the density n / V.
    - `r_max`: the largest distance (at most half the box).
    - `bins`: number of bins on `[0, r_max]`.
    - `width`: `None` for a plain histogram; a length for Gaussian smearing of
      each pair distance, which makes g(r) differentiable in the positions.

    **Returns:** `(r, g)`, each shape `(bins,)`.

    **Raises:** `ValueError` for free space, `r_max <= 0` or `bins < 1`.
    """
    if not space.periodic:
        raise ValueError("rdf: needs a periodic space to define the density")
    if not r_max > 0 or bins < 1:
        raise ValueError(f"rdf: need r_max > 0 and bins >= 1, got r_max={r_max}, bins={bins}")
    n, d = positions.shape
    p = all_pairs(n)
    r = space.distance(positions[p[:, 0]], positions[p[:, 1]])
    edges = jnp.linspace(0.0, r_max, bins + 1, dtype=positions.dtype)
    centres = 0.5 * (edges[1:] + edges[:-1])
    dr = edges[1] - edges[0]
    if width is None:
        counts = jnp.histogram(r, bins=edges)[0].astype(positions.dtype)
    else:
        z = (r[:, None] - centres[None, :]) / width
        counts = jnp.sum(jnp.exp(-0.5 * z * z), axis=0) * dr / (width * math.sqrt(2 * math.pi))
    surface = {1: 2.0, 2: 2.0 * math.pi, 3: 4.0 * math.pi}[d]
    shell = surface * centres ** (d - 1) * dr
    density = n / space.volume().astype(positions.dtype)
    g = counts / (0.5 * n * density * shell)
    return centres, g


def msd(trajectory: Float[Array, "t n d"], reference: Float[Array, "n d"] | None = None) -> Array:
    """Gives the mean squared displacement from `reference` (default frame 0), shape `(t,)`.

    Needs unwrapped positions (the integrators never wrap).
    """
    ref = trajectory[0] if reference is None else reference
    d = trajectory - ref[None]
    return jnp.mean(jnp.sum(d * d, axis=-1), axis=-1)


@eqx.filter_jit
def min_distance(
    positions: Float[Array, "n d"], space: AbstractSpace, neighbors: NeighborList | None = None
) -> Array:
    """Gives the smallest pair distance (over the list's pairs if `neighbors` is given)."""
    n = positions.shape[0]
    pairs = all_pairs(n) if neighbors is None else neighbors.pairs
    i, j = pairs[:, 0], pairs[:, 1]
    r2 = jnp.sum(space.displacement(positions[i], positions[j]) ** 2, axis=-1)
    return jnp.sqrt(jnp.min(jnp.where(i < n, r2, jnp.inf)))


def check_positions(
    positions: Float[Array, "n d"],
    space: AbstractSpace,
    *,
    floor: float = 0.1,
    neighbors: NeighborList | None = None,
    species: ArrayLike | None = None,
) -> None:
    """Raises `ValueError` for bad input: NaN/inf positions, atoms closer than `floor`,
    or a `species` array whose length differs from the number of atoms. Outside jit.
    """
    positions = jnp.asarray(positions)
    if positions.ndim != 2:
        raise ValueError(f"positions must have shape (n, d), got {positions.shape}")
    a = np.asarray(positions)
    if not np.all(np.isfinite(a)):
        bad = np.unique(np.nonzero(~np.isfinite(a))[0])
        raise ValueError(f"positions contain NaN or inf (atoms {bad[:10].tolist()})")
    if species is not None and np.shape(species) != (a.shape[0],):
        raise ValueError(f"species has shape {np.shape(species)} but there are {a.shape[0]} atoms")
    if a.shape[0] > 1:
        r = _np_min_distance(a, space, neighbors)
        if r is not None and r < floor:
            raise ValueError(
                f"overlapping atoms: the closest pair is {r:.4g} apart, below the floor "
                f"{floor:g}; the energy would blow up"
            )


def _np_min_distance(a, space, neighbors):
    """Smallest pair distance in numpy (works while a jit trace is active), or None when
    the space or list is traced, or the dense check would be too big."""
    n = a.shape[0]
    if neighbors is not None:
        if not is_concrete(neighbors.pairs):
            return None
        p = np.asarray(neighbors.pairs)
        p = p[p[:, 0] < n]
    elif n <= 3000:
        p = _np_pairs(n)
    else:
        return None
    if p.shape[0] == 0:
        return None
    d = a[p[:, 0]] - a[p[:, 1]]
    leaves = [x for x in jax.tree.leaves(space) if isinstance(x, jax.Array)]
    if not is_concrete(leaves):
        return None
    if isinstance(space, FreeSpace):
        pass
    elif hasattr(space, "lengths"):
        L = np.asarray(space.lengths, dtype=a.dtype)[None, :]
        d = d - L * np.round(d / L)
    else:
        cell = np.asarray(space.cell, dtype=np.float64)
        s = d @ np.linalg.inv(cell)
        d = (s - np.round(s)) @ cell
    return float(np.sqrt(np.min(np.sum(d * d, axis=-1))))


def _np_pairs(n):
    i, j = np.triu_indices(n, k=1)
    return np.stack([i, j], axis=-1)
