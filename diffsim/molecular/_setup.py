"""Starting configurations: lattices and Maxwell-Boltzmann velocities."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, PRNGKeyArray
from ._space import PeriodicBox


def lattice(n: int, density: float, *, dim: int = 3, dtype=None) -> tuple[Array, PeriodicBox]:
    """Gives `(positions, box)`: `n` atoms on a lattice filling a cubic periodic box.

    FCC when `n = 4 c^3` (3-D), otherwise simple cubic when `n = c^dim`; the box side
    is `(n / density)^(1 / dim)`.

    **Raises:** `ValueError` if `n` fits neither lattice or `density <= 0`.

    **Example:** `positions, box = lattice(500, 0.8)` (FCC, 5 x 5 x 5 cells).
    """
    if not density > 0:
        raise ValueError(f"lattice: density must be > 0, got {density}")
    side = (n / density) ** (1.0 / dim)
    c = round((n / 4) ** (1 / 3))
    if dim == 3 and 4 * c**3 == n:
        basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    else:
        c = round(n ** (1 / dim))
        if c**dim != n:
            raise ValueError(f"lattice: n = {n} is neither 4 c^3 (FCC) nor c^{dim} (simple cubic)")
        basis = np.zeros((1, dim))
    grid = np.stack(np.meshgrid(*[np.arange(c)] * dim, indexing="ij"), -1).reshape(-1, dim)
    frac = (grid[:, None, :] + basis[None, :, :] + 0.25).reshape(-1, dim) / c
    dtype = jnp.result_type(float) if dtype is None else dtype
    positions = jnp.asarray(frac * side, dtype)
    return positions, PeriodicBox(jnp.full((dim,), side, dtype))


def random_velocities(
    n: int,
    dim: int,
    kT: float,
    *,
    key: PRNGKeyArray,
    mass: ArrayLike = 1.0,
    dtype=None,
) -> Array:
    """Gives Maxwell-Boltzmann velocities, shape `(n, dim)`, with zero total momentum,
    scaled so the kinetic temperature 2 KE / (n dim) is exactly `kT`.
    """
    if kT < 0:
        raise ValueError(f"random_velocities: kT must be >= 0, got {kT}")
    dtype = jnp.result_type(float) if dtype is None else dtype
    m = jnp.asarray(mass, dtype)
    m = m[:, None] if m.ndim == 1 else m
    v = jax.random.normal(key, (n, dim), dtype) / jnp.sqrt(m)
    p = jnp.broadcast_to(m, (n, 1)) * v
    v = v - jnp.sum(p, axis=0, keepdims=True) / jnp.sum(jnp.broadcast_to(m, (n, 1)))
    t = jnp.sum(m * v * v) / (n * dim)
    return v * jnp.sqrt(kT / t)
