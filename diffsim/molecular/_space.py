"""Spaces: free space and periodic boxes (orthorhombic and triclinic).

A space gives the displacement `ra - rb` between positions (the minimum image in a
periodic box), wraps positions into the box, and converts to fractional coordinates
for the cell list. Positions are never wrapped by the integrators: displacements are
taken modulo the box, so unwrapped trajectories give mean squared displacements
directly.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_positive, is_concrete
from .._custom_types import Array, ArrayLike, Float


class AbstractSpace(eqx.Module):
    """Where atoms live: displacement, wrapping, volume.

    Subclasses: `FreeSpace()`, `PeriodicBox(lengths)`, `TriclinicBox(cell)`.
    """

    @abc.abstractmethod
    def displacement(self, ra: Float[Array, "... d"], rb: Float[Array, "... d"]) -> Array:
        """Gives `ra - rb` (the minimum image in a periodic box); broadcasts."""

    @abc.abstractmethod
    def pair_components(self, positions: Float[Array, "n d"], i, j) -> list[Array]:
        """Gives the d components of `r_i - r_j` for index arrays `i`, `j` (minimum image).

        Computed column by column (structure of arrays), which XLA on CPU runs an order
        of magnitude faster than the `(m, d)` form; indices `>= n` read zeros.
        """

    @abc.abstractmethod
    def wrap(self, positions: Float[Array, "... d"]) -> Array:
        """Gives positions mapped into the primary box (identity in free space)."""

    @abc.abstractmethod
    def deform(self, deformation: Float[Array, "d d"]) -> AbstractSpace:
        """Gives the space after the homogeneous deformation r -> F r (for stress)."""

    @property
    @abc.abstractmethod
    def periodic(self) -> bool:
        """Whether the space is periodic."""

    def volume(self) -> Array:
        """Gives the cell volume (area in 2-D); only periodic spaces have one.

        **Raises:** `ValueError` for a space without a cell (free space).
        """
        raise ValueError(f"{type(self).__name__} has no volume (it is not periodic)")

    def distance(self, ra, rb):
        """Gives |ra - rb| under the space's metric (minimum image if periodic)."""
        d = self.displacement(ra, rb)
        return jnp.sqrt(jnp.sum(d * d, axis=-1))


class FreeSpace(AbstractSpace):
    """Open boundaries: `displacement(ra, rb) = ra - rb`.

    **Example:** `space = FreeSpace(); space.distance(r[0], r[1])`.
    """

    def displacement(self, ra, rb):
        return ra - rb

    def wrap(self, positions):
        return positions

    def pair_components(self, positions, i, j):
        return [_take(x, i) - _take(x, j) for x in positions.T]

    def deform(self, deformation):
        return self

    @property
    def periodic(self) -> bool:
        return False


class PeriodicBox(AbstractSpace):
    """An orthorhombic periodic box with side lengths `lengths` (units of length).

    **Arguments:**

    - `lengths`: shape `(d,)` side lengths, each > 0; a scalar is taken for all `d`
      sides only through `PeriodicBox.cube(length, d)`.

    **Raises:** `ValueError` if a concrete side length is not positive or finite.

    **Example:** `space = PeriodicBox(jnp.array([10.0, 10.0, 10.0]))`.
    """

    lengths: Float[Array, " d"]

    def __init__(self, lengths: ArrayLike):
        lengths = jnp.asarray(lengths)
        if lengths.ndim != 1:
            raise ValueError(
                f"PeriodicBox: lengths must have shape (d,), got shape {lengths.shape}; "
                "use PeriodicBox.cube(L, d) for a cube or TriclinicBox(cell) for a (d, d) cell"
            )
        _check_positive_concrete("PeriodicBox: lengths", lengths)
        self.lengths = lengths

    @staticmethod
    def cube(length: float, dim: int = 3) -> PeriodicBox:
        """Gives a cubic box of side `length` in `dim` dimensions."""
        return PeriodicBox(jnp.full((dim,), length))

    def _lengths_like(self, x):
        return self.lengths.astype(x.dtype).reshape((1,) * (x.ndim - 1) + self.lengths.shape)

    def displacement(self, ra, rb):
        d = ra - rb
        L = self._lengths_like(d)
        return d - L * jnp.round(d / L)

    def wrap(self, positions):
        return jnp.mod(positions, self._lengths_like(positions))

    def pair_components(self, positions, i, j):
        L = self.lengths.astype(positions.dtype)
        out = []
        for k, x in enumerate(positions.T):
            d = _take(x, i) - _take(x, j)
            out.append(d - L[k] * jnp.round(d / L[k]))
        return out

    def fractional(self, positions):
        return positions / self._lengths_like(positions)

    def deform(self, deformation):
        # Rows of the cell are lattice vectors; r -> F r maps a row a to a F^T.
        return TriclinicBox(exact_matmul(jnp.diag(self.lengths), deformation.T))

    @property
    def periodic(self) -> bool:
        return True

    @property
    def cell(self) -> Array:
        return jnp.diag(self.lengths)

    def widths(self) -> Array:
        """Gives the perpendicular widths of the box (its side lengths)."""
        return self.lengths

    def volume(self) -> Array:
        """Gives the box volume (area in 2-D)."""
        return jnp.prod(self.lengths)


class TriclinicBox(AbstractSpace):
    """A general periodic cell whose rows are the lattice vectors (ASE's convention).

    Minimum images come from rounding fractional coordinates, which is exact for
    distances below half the smallest perpendicular width when the cell is reduced
    (each tilt at most half the corresponding side, as LAMMPS requires); keep cells
    reduced.

    **Arguments:**

    - `cell`: shape `(d, d)`, row k the k-th lattice vector; non-singular.

    **Raises:** `ValueError` if a concrete cell is singular or not `(d, d)`.
    """

    cell: Float[Array, "d d"]

    def __init__(self, cell: ArrayLike):
        cell = jnp.asarray(cell)
        if cell.ndim != 2 or cell.shape[0] != cell.shape[1]:
            raise ValueError(f"TriclinicBox: cell must have shape (d, d), got {cell.shape}")
        if is_concrete(cell):
            det = float(np.linalg.det(np.asarray(cell, dtype=np.float64)))
            if not np.isfinite(det) or abs(det) < 1e-12:
                raise ValueError(f"TriclinicBox: cell must be non-singular, det = {det}")
        self.cell = cell

    def fractional(self, positions):
        inv = jnp.linalg.inv(self.cell.astype(positions.dtype))
        return exact_matmul(positions, inv)

    def displacement(self, ra, rb):
        d = ra - rb
        cell = self.cell.astype(d.dtype)
        s = exact_matmul(d, jnp.linalg.inv(cell))
        s = s - jnp.round(s)
        return exact_matmul(s, cell)

    def wrap(self, positions):
        cell = self.cell.astype(positions.dtype)
        s = jnp.mod(self.fractional(positions), 1.0)
        return exact_matmul(s, cell)

    def pair_components(self, positions, i, j):
        cell = self.cell.astype(positions.dtype)
        ds = []
        for x in self.fractional(positions).T:
            d = _take(x, i) - _take(x, j)
            ds.append(d - jnp.round(d))
        dim = cell.shape[0]
        return [sum(ds[k] * cell[k, c] for k in range(dim)) for c in range(dim)]

    def deform(self, deformation):
        return TriclinicBox(exact_matmul(self.cell, deformation.T))

    @property
    def periodic(self) -> bool:
        return True

    def widths(self) -> Array:
        """Gives the perpendicular widths: the distances between opposite faces."""
        # Width k = V / |face spanned by the other vectors| = 1 / |column k of inv(cell)|.
        inv = jnp.linalg.inv(self.cell)
        return 1.0 / jnp.sqrt(jnp.sum(inv * inv, axis=0))

    def volume(self) -> Array:
        """Gives the cell volume (area in 2-D)."""
        return jnp.abs(jnp.linalg.det(self.cell))


def exact_matmul(a, b):
    """Gives `a @ b` at full precision on every backend.

    Geometry (fractional coordinates, cell images, strains) must not go through the
    TF32 products that JAX's default float32 precision allows on GPUs: a 10-bit mantissa
    moves an atom by about 1e-3 of the box.
    """
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)


def _take(x, idx):
    return x.at[idx].get(mode="fill", fill_value=0)


def _check_positive_concrete(name, x):
    if is_concrete(x):
        check_positive(x, name)


def box_widths(space: AbstractSpace):
    """Gives the perpendicular widths of a periodic space, or `None` for free space."""
    if isinstance(space, (PeriodicBox, TriclinicBox)):
        return space.widths()
    return None


def check_box(space: AbstractSpace, cutoff: float, what: str = "cutoff") -> None:
    """Raises `ValueError` if a concrete periodic box is narrower than `2 * cutoff`.

    The minimum-image convention counts each pair once only when every perpendicular
    width of the box is at least twice the interaction range.
    """
    widths = box_widths(space)
    if widths is None or not is_concrete(widths):
        return
    w = np.asarray(widths, dtype=np.float64)
    if np.any(w < 2.0 * cutoff * (1 - 1e-12)):
        raise ValueError(
            f"box too small: perpendicular widths {np.round(w, 6).tolist()} must each be at least "
            f"2 * {what} = {2.0 * cutoff:g} for the minimum-image convention; use a bigger box "
            f"(more atoms) or a shorter {what}"
        )
