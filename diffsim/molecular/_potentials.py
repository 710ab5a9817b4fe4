"""Classical potentials as plain functions of positions.

Every energy here is an `eqx.Module` called as
`energy_fn(positions, neighbors=None, *, space=None, **params) -> scalar`, so

    forces  = -jax.grad(energy_fn)(positions, neighbors)
    hessian = jax.hessian(energy_fn)(positions)
    dE/dsigma = jax.grad(lambda s: energy_fn(positions, neighbors, sigma=s))(sigma)

all come from JAX. `neighbors=None` sums over all pairs (the dense path, for small
systems); a `NeighborList` sums over its pairs. `space=` replaces the space (the
strain derivative uses it for the stress); `**params` replace the potential's
parameters by name.

Cutoff conventions (strategies, passed as `cutoff=`):

- `Shifted(rc)`: u(r) - u(rc) for r < rc, 0 beyond. Continuous energy, forces jump
  at rc. ASE's `LennardJones(smooth=False, rc=rc)`. Not for gradients through a
  trajectory: each crossing of rc is a jump the gradient cannot see (use `Switched`).
- `Switched(ro, rc)`: u(r) S(r) with S = 1 below ro, 0 above rc and, between,
  S = (rc^2 - r^2)^2 (rc^2 + 2 r^2 - 3 ro^2) / (rc^2 - ro^2)^3 (HOOMD-blue's
  switching function). Continuous energy and forces. JAX MD's
  `multiplicative_isotropic_cutoff` and ASE's `LennardJones(smooth=True, ro=ro, rc=rc)`.
- `NoCutoff()`: the bare potential (dense path only).
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import is_concrete
from .._custom_types import Array, ArrayLike, Int, Scalar
from ._neighbors import NeighborList, all_pairs
from ._space import AbstractSpace, check_box

# --- energy interface ---------------------------------------------------------------


class AbstractEnergy(eqx.Module):
    """A potential energy: `energy_fn(positions, neighbors=None, *, space=None, **params)`.

    Learned potentials implement the same call; integrators and observables accept any
    callable with this signature.
    """

    @abc.abstractmethod
    def __call__(self, positions, neighbors=None, *, space=None, **params) -> Scalar:
        """Gives the total potential energy (a scalar)."""

    @property
    def cutoff_radius(self) -> float:
        """The interaction range (inf when unbounded); neighbour lists need it finite."""
        return math.inf

    def __add__(self, other):
        return SumEnergy((self, other))


class SumEnergy(AbstractEnergy):
    """The sum of several energy terms sharing positions, neighbours and space."""

    terms: tuple

    def __call__(self, positions, neighbors=None, *, space=None, **params):
        if params:
            raise ValueError(
                f"SumEnergy: parameter overrides {sorted(params)} are ambiguous for a sum; "
                "override them on the terms"
            )
        return sum(t(positions, neighbors, space=space) for t in self.terms)

    @property
    def cutoff_radius(self) -> float:
        return max(t.cutoff_radius for t in self.terms)

    def __add__(self, other):
        return SumEnergy((*self.terms, other))


# --- pair kernels --------------------------------------------------------------------


class AbstractKernel(eqx.Module):
    """A pair potential u(r^2; p). Parameters are scalars or (S, S) per species pair."""

    @abc.abstractmethod
    def energy(self, r2, p: dict) -> Array:
        """Gives u at squared distance `r2` for parameters `p` (broadcasting)."""

    @abc.abstractmethod
    def params(self) -> dict:
        """Gives the parameters by name."""

    def natural_range(self) -> float:
        """A finite range of the bare potential, if it has one (else inf)."""
        return math.inf


class LennardJones(AbstractKernel):
    """u(r) = 4 epsilon ((sigma/r)^12 - (sigma/r)^6); minimum -epsilon at 2^(1/6) sigma."""

    sigma: ArrayLike = 1.0
    epsilon: ArrayLike = 1.0

    def energy(self, r2, p):
        s6 = (p["sigma"] ** 2 / r2) ** 3
        return 4.0 * p["epsilon"] * (s6 * s6 - s6)

    def params(self):
        return {"sigma": self.sigma, "epsilon": self.epsilon}


class Morse(AbstractKernel):
    """u(r) = epsilon (1 - exp(-alpha (r - sigma)))^2 - epsilon; minimum -epsilon at sigma."""

    sigma: ArrayLike = 1.0
    epsilon: ArrayLike = 5.0
    alpha: ArrayLike = 5.0

    def energy(self, r2, p):
        r = jnp.sqrt(r2)
        x = 1.0 - jnp.exp(-p["alpha"] * (r - p["sigma"]))
        return p["epsilon"] * x * x - p["epsilon"]

    def params(self):
        return {"sigma": self.sigma, "epsilon": self.epsilon, "alpha": self.alpha}


class SoftSphere(AbstractKernel):
    """u(r) = epsilon / alpha (1 - r/sigma)^alpha for r < sigma, 0 beyond."""

    sigma: ArrayLike = 1.0
    epsilon: ArrayLike = 1.0
    alpha: float = eqx.field(default=2.0, static=True)

    def energy(self, r2, p):
        r = jnp.sqrt(r2)
        x = jnp.maximum(1.0 - r / p["sigma"], 0.0)
        return p["epsilon"] / self.alpha * x**self.alpha

    def params(self):
        return {"sigma": self.sigma, "epsilon": self.epsilon}

    def natural_range(self):
        if not is_concrete(self.sigma):
            raise ValueError("SoftSphere: give a cutoff=Shifted(rc) when sigma is traced")
        return float(np.max(np.asarray(self.sigma)))


# --- cutoff conventions --------------------------------------------------------------


class AbstractCutoff(eqx.Module):
    """How a pair potential is truncated at `radius`."""

    @abc.abstractmethod
    def apply(self, kernel: AbstractKernel, r2, p: dict, table: dict) -> Array:
        """Gives the truncated pair energy at `r2` (p: per-pair, table: per-species)."""

    @property
    @abc.abstractmethod
    def radius(self) -> float:
        """The cutoff distance (inf for none)."""


class NoCutoff(AbstractCutoff):
    """No truncation: the bare potential (only with `neighbors=None`)."""

    def apply(self, kernel, r2, p, table):
        return kernel.energy(r2, p)

    @property
    def radius(self):
        return math.inf


class Shifted(AbstractCutoff):
    """u(r) - u(rc) below `cutoff`, 0 beyond (ASE `LennardJones(smooth=False)`).

    The energy is continuous but the force jumps at `cutoff`. Single-point energies and
    forces are exact; but a gradient *through an MD trajectory* (with respect to
    parameters or initial positions) misses every jump a pair makes as it crosses the
    cutoff, and disagrees with finite differences (0.25% on argon over 200 steps,
    where `Switched` agrees to 3e-7). For gradients through MD use `Switched`.
    """

    cutoff: float = eqx.field(static=True)

    def __check_init__(self):
        if not (math.isfinite(self.cutoff) and self.cutoff > 0):
            raise ValueError(f"Shifted: cutoff must be finite and > 0, got {self.cutoff}")

    def apply(self, kernel, r2, p, table):
        rc2 = self.cutoff**2
        return jnp.where(r2 < rc2, kernel.energy(r2, p) - p["_shift"], 0.0)

    @property
    def radius(self):
        return self.cutoff


class Switched(AbstractCutoff):
    """u(r) S(r): S = 1 below `onset`, 0 above `cutoff`, C^1 between.

    HOOMD-blue's switching function, as JAX MD and ASE `LennardJones(smooth=True)`.
    """

    onset: float = eqx.field(static=True)
    cutoff: float = eqx.field(static=True)

    def __check_init__(self):
        if not (0 <= self.onset < self.cutoff < math.inf):
            raise ValueError(
                f"Switched: need 0 <= onset < cutoff < inf, got onset={self.onset}, "
                f"cutoff={self.cutoff}"
            )

    def apply(self, kernel, r2, p, table):
        rc2, ro2 = self.cutoff**2, self.onset**2
        s = (rc2 - r2) ** 2 * (rc2 + 2.0 * r2 - 3.0 * ro2) / (rc2 - ro2) ** 3
        s = jnp.where(r2 < ro2, 1.0, jnp.where(r2 < rc2, s, 0.0))
        return jnp.where(r2 < rc2, kernel.energy(r2, p) * s, 0.0)

    @property
    def radius(self):
        return self.cutoff


# --- pair energy ---------------------------------------------------------------------


class PairEnergy(AbstractEnergy):
    """E = sum over pairs i<j of the truncated kernel u(r_ij; p[s_i, s_j]).

    **Arguments:**

    - `kernel`: `LennardJones(sigma, epsilon)`, `Morse(...)`, `SoftSphere(...)`; each
      parameter a scalar or an `(S, S)` symmetric table over species pairs.
    - `space`: the space distances are measured in.
    - `cutoff`: `Shifted(rc)`, `Switched(ro, rc)` or `NoCutoff()`.
    - `species`: shape `(n,)` integers in `[0, S)`, or `None` for one species.

    **Raises:** `ValueError` if a parameter table is not `(S, S)`, species are out of
    range, or a periodic box is narrower than twice the cutoff.

    Called as `energy(positions, neighbors=None, *, space=None, **params)`; see the
    module docstring.
    """

    kernel: AbstractKernel
    space: AbstractSpace
    cutoff: AbstractCutoff
    species: Int[Array, " n"] | None = None

    def __check_init__(self):
        if not isinstance(self.cutoff, AbstractCutoff):
            raise ValueError(
                f"{type(self.kernel).__name__}: cutoff must be a cutoff convention such as "
                f"Shifted(2.5), Switched(2.0, 2.5) or NoCutoff(), got {self.cutoff!r}"
            )
        _check_species_tables(type(self.kernel).__name__, self.kernel.params(), self.species)
        if math.isfinite(self.cutoff_radius):
            check_box(self.space, self.cutoff_radius)

    @property
    def cutoff_radius(self) -> float:
        r = self.cutoff.radius
        return r if math.isfinite(r) else self.kernel.natural_range()

    def __call__(self, positions, neighbors=None, *, space=None, **params):
        kernel = self.kernel
        if params:
            unknown = set(params) - set(kernel.params())
            if unknown:
                raise ValueError(
                    f"{type(kernel).__name__}: unknown parameters {sorted(unknown)}; "
                    f"allowed: {sorted(kernel.params())}"
                )
            kernel = eqx.tree_at(
                lambda k: [getattr(k, n) for n in params],
                kernel,
                list(params.values()),
                is_leaf=lambda x: x is None,
            )
        space = self.space if space is None else space
        positions = _check_positions_shape(positions)
        n = positions.shape[0]
        dtype = positions.dtype
        if self.species is not None and self.species.shape != (n,):
            raise ValueError(
                f"species has shape {self.species.shape} but positions has {n} atoms; "
                f"species must have shape ({n},)"
            )
        pairs = pair_indices(n, neighbors, cutoff=self.cutoff_radius)
        i, j = pairs[:, 0], pairs[:, 1]
        valid = i < n
        r2 = sum(c * c for c in space.pair_components(positions, i, j))
        # Padding pairs read zeros (r = 0): give them a harmless r^2 so their (masked)
        # gradient is 0, not NaN.
        r2 = jnp.where(valid, r2, jnp.ones((), dtype))
        table = {k: jnp.asarray(v).astype(dtype) for k, v in kernel.params().items()}
        if isinstance(self.cutoff, Shifted):
            table["_shift"] = kernel.energy(jnp.asarray(self.cutoff.cutoff**2, dtype), table)
        p = _gather_pair_params(table, self.species, i, j, n)
        e = self.cutoff.apply(kernel, r2, p, table)
        return jnp.sum(jnp.where(valid, e, jnp.zeros((), dtype)))


def _gather_pair_params(table, species, i, j, n):
    out = {}
    for k, v in table.items():
        if v.ndim == 2:
            si = species[jnp.minimum(i, n - 1)]
            sj = species[jnp.minimum(j, n - 1)]
            out[k] = v[si, sj]
        else:
            out[k] = v
    return out


def _check_species_tables(name, params, species):
    sizes = set()
    for k, v in params.items():
        shape = np.shape(v)
        if len(shape) == 0:
            continue
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(
                f"{name}: parameter {k} must be a scalar or an (S, S) table over species "
                f"pairs, got shape {shape}"
            )
        sizes.add(shape[0])
    if len(sizes) > 1:
        raise ValueError(
            f"{name}: parameter tables disagree on the number of species: {sorted(sizes)}"
        )
    if sizes and species is None:
        raise ValueError(f"{name}: per-species parameter tables given but species=None")
    if species is not None:
        if np.ndim(species) != 1 or not jnp.issubdtype(jnp.asarray(species).dtype, jnp.integer):
            raise ValueError(
                f"species must be a 1-D integer array, got shape {np.shape(species)}, "
                f"dtype {jnp.asarray(species).dtype}"
            )
        if sizes and is_concrete(species):
            (S,) = sizes
            s = np.asarray(species)
            if s.size and (s.min() < 0 or s.max() >= S):
                raise ValueError(
                    f"{name}: species must lie in [0, {S}) for (S, S) = ({S}, {S}) tables, "
                    f"got values in [{s.min()}, {s.max()}]"
                )


def _check_positions_shape(positions):
    positions = jnp.asarray(positions)
    if positions.ndim != 2 or positions.shape[1] not in (1, 2, 3):
        raise ValueError(f"positions must have shape (n, d) with d in 1..3, got {positions.shape}")
    if not jnp.issubdtype(positions.dtype, jnp.floating):
        raise ValueError(f"positions must be floating point, got dtype {positions.dtype}")
    return positions


def pair_indices(
    n: int, neighbors: NeighborList | None = None, *, cutoff: float
) -> Int[Array, "m 2"]:
    """Gives the candidate pairs `(i, j)`, shape `(m, 2)`, for an energy with range `cutoff`.

    `neighbors=None` gives every unordered pair once (`all_pairs(n)`, the dense path); a
    `NeighborList` gives its pairs (padding rows index `n`). Pairs farther apart than
    `cutoff` may be included: the caller masks them by distance.

    **Raises:** `TypeError` for anything but a `NeighborList` or `None`; `ValueError` if
    the list was built for another number of atoms or a shorter cutoff; under `jit`, an
    `eqx.error_if` error if the list overflowed (its pairs would give wrong forces).

    **Example:** `pairs = pair_indices(len(positions), nbrs, cutoff=2.5)`.
    """
    if neighbors is None:
        return all_pairs(n)
    if not isinstance(neighbors, NeighborList):
        raise TypeError(f"neighbors must be a NeighborList or None, got {type(neighbors).__name__}")
    if neighbors.reference.shape[0] != n:
        raise ValueError(
            f"neighbors was built for {neighbors.reference.shape[0]} atoms, positions has {n}"
        )
    if neighbors.cutoff < cutoff * (1 - 1e-12):
        raise ValueError(
            f"neighbors.cutoff = {neighbors.cutoff} is shorter than the potential's cutoff "
            f"{cutoff}; build the list with cutoff >= {cutoff}"
        )
    pairs = eqx.error_if(
        neighbors.pairs,
        neighbors.overflow,
        "neighbour list overflowed (more pairs or atoms per cell than its capacity): "
        "forces would be wrong. Reallocate it outside jit with "
        "diffsim.molecular.reallocate(neighbors, positions), or run MD through simulate()",
    )
    return pairs


# --- bonded terms --------------------------------------------------------------------


class HarmonicBonds(AbstractEnergy):
    """E = sum_b k_b / 2 (|r_i - r_j| - r0_b)^2 over bonds b = (i, j).

    **Arguments:** `bonds` shape `(m, 2)` atom indices; `k`, `r0` scalars or shape
    `(m,)`; `space` for the minimum image.
    """

    bonds: Int[Array, "m 2"]
    k: ArrayLike
    r0: ArrayLike
    space: AbstractSpace

    def __check_init__(self):
        if np.ndim(self.bonds) != 2 or np.shape(self.bonds)[1] != 2:
            raise ValueError(
                f"HarmonicBonds: bonds must have shape (m, 2), got {np.shape(self.bonds)}"
            )

    def __call__(self, positions, neighbors=None, *, space=None, **params):
        p = {"k": self.k, "r0": self.r0, **params}
        space = self.space if space is None else space
        positions = _check_positions_shape(positions)
        _check_indices("HarmonicBonds: bonds", self.bonds, positions.shape[0])
        i, j = self.bonds[:, 0], self.bonds[:, 1]
        r = space.distance(positions[i], positions[j])
        k = jnp.asarray(p["k"]).astype(positions.dtype)
        r0 = jnp.asarray(p["r0"]).astype(positions.dtype)
        return jnp.sum(0.5 * k * (r - r0) ** 2)


class HarmonicAngles(AbstractEnergy):
    """E = sum_a k_a / 2 (theta_a - theta0_a)^2 over angles a = (i, j, k), j the vertex.

    theta is not differentiable at exactly 0 or pi (collinear atoms); keep theta0 away.
    """

    angles: Int[Array, "m 3"]
    k: ArrayLike
    theta0: ArrayLike
    space: AbstractSpace

    def __check_init__(self):
        if np.ndim(self.angles) != 2 or np.shape(self.angles)[1] != 3:
            raise ValueError(
                f"HarmonicAngles: angles must have shape (m, 3), got {np.shape(self.angles)}"
            )

    def __call__(self, positions, neighbors=None, *, space=None, **params):
        p = {"k": self.k, "theta0": self.theta0, **params}
        space = self.space if space is None else space
        positions = _check_positions_shape(positions)
        _check_indices("HarmonicAngles: angles", self.angles, positions.shape[0])
        a = space.displacement(positions[self.angles[:, 0]], positions[self.angles[:, 1]])
        b = space.displacement(positions[self.angles[:, 2]], positions[self.angles[:, 1]])
        cos = jnp.sum(a * b, -1) / jnp.sqrt(jnp.sum(a * a, -1) * jnp.sum(b * b, -1))
        theta = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
        k = jnp.asarray(p["k"]).astype(positions.dtype)
        t0 = jnp.asarray(p["theta0"]).astype(positions.dtype)
        return jnp.sum(0.5 * k * (theta - t0) ** 2)


def _check_indices(name, idx, n):
    if not is_concrete(idx):
        return
    a = np.asarray(idx)
    if a.size and (a.min() < 0 or a.max() >= n):
        raise ValueError(
            f"{name} must index atoms in [0, {n}), got values in [{a.min()}, {a.max()}]"
        )


# --- constructors --------------------------------------------------------------------


def lennard_jones(
    space: AbstractSpace,
    *,
    sigma: ArrayLike = 1.0,
    epsilon: ArrayLike = 1.0,
    cutoff: AbstractCutoff | None = None,
    species: ArrayLike | None = None,
) -> PairEnergy:
    """Gives the Lennard-Jones energy function `energy(positions, neighbors=None, **params)`.

    u(r) = 4 epsilon ((sigma/r)^12 - (sigma/r)^6), summed over pairs.

    **Arguments:**

    - `space`: `FreeSpace()`, `PeriodicBox(...)` or `TriclinicBox(...)`.
    - `sigma`, `epsilon`: scalars or `(S, S)` tables, in your length and energy units
      (with ASE structures: Angstrom and eV; argon is sigma = 3.4, epsilon = 0.0104).
    - `cutoff`: default `Switched(2.0 sigma, 2.5 sigma)` with the largest sigma, as
      JAX MD (`Switched(2.0, 2.5)` for sigma = 1). An explicit cutoff is in absolute
      length units: `Shifted(2.5 * sigma)` for ASE's plain shifted convention.
    - `species`: shape `(n,)` integers when the parameters are tables.

    **Raises:** `ValueError` if the cutoff is shorter than the largest sigma (almost
    surely a cutoff given in units of sigma), or if `sigma` is traced and no cutoff is
    given.

    **Example:**

    ```python
    energy = lennard_jones(FreeSpace(), sigma=3.4, epsilon=0.0104)  # argon, Angstrom, eV
    forces = -jax.grad(energy)(positions)                            # eV/Angstrom
    ```
    """
    largest = _largest("lennard_jones", sigma, cutoff)
    if cutoff is None:
        assert largest is not None  # _largest raises for a traced sigma without a cutoff
        cutoff = Switched(2.0 * largest, 2.5 * largest)
    elif largest is not None and cutoff.radius < largest:
        raise ValueError(
            f"lennard_jones: cutoff radius {cutoff.radius} is shorter than sigma = {largest}; "
            f"explicit cutoffs are absolute lengths (e.g. Switched({2.0 * largest:g}, "
            f"{2.5 * largest:g}) for 2.0 and 2.5 sigma), or omit cutoff for that default"
        )
    return PairEnergy(
        LennardJones(sigma, epsilon),
        space,
        cutoff,
        None if species is None else jnp.asarray(species),
    )


def _largest(name: str, sigma, cutoff) -> float | None:
    """The largest sigma when concrete (None when traced and a cutoff is given)."""
    if not is_concrete(sigma):
        if cutoff is None:
            raise ValueError(
                f"{name}: sigma is traced, so the default cutoff (2.5 sigma) cannot be "
                "computed; pass cutoff=Switched(ro, rc) in length units"
            )
        return None
    largest = float(np.max(np.asarray(sigma)))
    if not (math.isfinite(largest) and largest > 0):
        raise ValueError(f"{name}: sigma must be finite and > 0, got {sigma!r}")
    return largest


def morse(
    space: AbstractSpace,
    *,
    sigma: ArrayLike = 1.0,
    epsilon: ArrayLike = 5.0,
    alpha: ArrayLike = 5.0,
    cutoff: AbstractCutoff | None = None,
    species: ArrayLike | None = None,
) -> PairEnergy:
    """Gives the Morse energy function; `cutoff` defaults to `Switched(1.5, 2.0)`."""
    cutoff = Switched(1.5, 2.0) if cutoff is None else cutoff
    return PairEnergy(
        Morse(sigma, epsilon, alpha),
        space,
        cutoff,
        None if species is None else jnp.asarray(species),
    )


def soft_sphere(
    space: AbstractSpace,
    *,
    sigma: ArrayLike = 1.0,
    epsilon: ArrayLike = 1.0,
    alpha: float = 2.0,
    species: ArrayLike | None = None,
) -> PairEnergy:
    """Gives the soft-sphere energy function (zero beyond sigma; no extra cutoff needed)."""
    return PairEnergy(
        SoftSphere(sigma, epsilon, alpha),
        space,
        NoCutoff(),
        None if species is None else jnp.asarray(species),
    )
