"""Effective-medium theory (EMT) as a differentiable diffsim energy.

The many-body metal potential of Jacobsen, Stoltze and Norskov (Surf. Sci. 366, 394,
1996) in the formulation and with the parameters of ASE's `ase.calculators.emt.EMT`
(default `asap_cutoff=False`): the same logistic cutoff, the same hard truncation at
the neighbour-search radius, the same reference energies. Energies in eV, lengths in
Angstrom. Forces are `-jax.grad`, the stress is the strain derivative
(`diffsim.molecular.stress`), and the element parameters are array leaves, so they
can be differentiated and fitted as well.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import is_concrete
from .._custom_types import Array, Float, Int, Scalar
from ._neighbors import NeighborList
from ._potentials import AbstractEnergy, pair_indices
from ._space import AbstractSpace, FreeSpace, box_widths, check_box, exact_matmul

# ASE's units.Bohr (CODATA 2014), in Angstrom.
BOHR = 0.5291772105638411

# Element: (E0 eV, s0 bohr, V0 eV, eta2 1/bohr, kappa 1/bohr, lambda 1/bohr, n0 1/bohr^3),
# ASE's table (ase/calculators/emt.py). H, C, N, O are "not for any serious use" (ASE).
EMT_PARAMETERS: dict[str, tuple[float, ...]] = {
    "Al": (-3.28, 3.00, 1.493, 1.240, 2.000, 1.169, 0.00700),
    "Cu": (-3.51, 2.67, 2.476, 1.652, 2.740, 1.906, 0.00910),
    "Ag": (-2.96, 3.01, 2.132, 1.652, 2.790, 1.892, 0.00547),
    "Au": (-3.80, 3.00, 2.321, 1.674, 2.873, 2.182, 0.00703),
    "Ni": (-4.44, 2.60, 3.673, 1.669, 2.757, 1.948, 0.01030),
    "Pd": (-3.90, 2.87, 2.773, 1.818, 3.107, 2.155, 0.00688),
    "Pt": (-5.85, 2.90, 4.067, 1.812, 3.145, 2.192, 0.00802),
    "H": (-3.21, 1.31, 0.132, 2.652, 2.790, 3.892, 0.00547),
    "C": (-3.50, 1.81, 0.332, 1.652, 2.790, 1.892, 0.01322),
    "N": (-5.10, 1.88, 0.132, 1.652, 2.790, 1.892, 0.01222),
    "O": (-4.60, 1.95, 0.332, 1.652, 2.790, 1.892, 0.00850),
}
_NUMBERS = {"H": 1, "C": 6, "N": 7, "O": 8, "Al": 13, "Ni": 28, "Cu": 29, "Pd": 46, "Ag": 47}
_NUMBERS |= {"Pt": 78, "Au": 79}
_SYMBOLS = {z: s for s, z in _NUMBERS.items()}

# (16 pi / 3)^(1/3) / sqrt(2), with ASE's historical rounding.
BETA = 1.809


def _cutoff_constants() -> tuple[float, float, float]:
    # ASE's _calc_cutoff with asap_cutoff=False: from the largest s0 in the whole table.
    maxseq = max(p[1] for p in EMT_PARAMETERS.values()) * BOHR
    r1nn = BETA * maxseq
    rc = r1nn * 0.5 * (math.sqrt(3.0) + 2.0)
    acut = math.log(1.0 / 1e-4 - 1.0) / (2.0 * r1nn - rc)
    return rc, rc + 0.5, acut


RC, RC_LIST, ACUT = _cutoff_constants()


class EMT(AbstractEnergy):
    """ASE's EMT as a diffsim energy: `emt(positions, neighbors=None, *, space=None)`.

    E = sum_i [E_c,i(sigma1_i) - E0_i] + sum over pairs of the atomic-sphere pair term,
    with the logistic cutoff w(r) = 1 / (1 + exp(a (r - rc))) truncated at
    `cutoff_radius` (ASE's neighbour radius, 5.877 A), all as in ASE.

    `neighbors=None` sums over every atom pair and every periodic image within the
    cutoff, so cells of any size work (a 108-atom copper cube, 10.8 A, sees its
    images twice); a `NeighborList` (built with `cutoff >= emt.cutoff_radius`, minimum
    image, so the box must be at least twice that wide) makes it O(N).

    **Arguments:**

    - `elements`: per atom, a chemical symbol or atomic number of Al, Cu, Ag, Au, Ni,
      Pd, Pt (H, C, N, O also, as in ASE).
    - `space`: `FreeSpace()`, `PeriodicBox(...)` or `TriclinicBox(...)` (Angstrom).

    Array fields (differentiable): `params` shape `(S, 7)`, the rows of
    `EMT_PARAMETERS` for the species present, in ASE's units (eV, bohr).

    **Raises:** `ValueError` for an element without parameters.

    **Example:**

    ```python
    positions, box = ...                                  # Angstrom, periodic
    energy = md.EMT(["Cu"] * len(positions), box)
    forces = -jax.grad(energy)(positions)                 # eV / A, equal to ASE's EMT
    sigma = md.stress(energy, positions, box)             # eV / A^3
    ```
    """

    params: Float[Array, "s 7"]
    species: Int[Array, " n"]
    space: AbstractSpace
    symbols: tuple[str, ...] = eqx.field(static=True)
    images: tuple[tuple[int, ...], ...] = eqx.field(static=True)

    def __init__(self, elements, space: AbstractSpace):
        symbols = []
        for e in elements:
            s = _SYMBOLS.get(int(e)) if isinstance(e, (int, np.integer)) else e
            if s not in EMT_PARAMETERS:
                raise ValueError(
                    f"EMT: no parameters for element {e!r}; have {sorted(EMT_PARAMETERS)}"
                )
            symbols.append(s)
        # Species in ASE's order (sorted atomic numbers), so per-species arrays line up.
        unique = sorted(set(symbols), key=lambda s: _NUMBERS[s])
        self.symbols = tuple(unique)
        self.species = jnp.asarray([unique.index(s) for s in symbols], jnp.int32)
        self.params = jnp.asarray(np.array([EMT_PARAMETERS[s] for s in unique]))
        self.space = space
        self.images = _image_shifts(space, RC_LIST)

    @property
    def cutoff_radius(self) -> float:
        return RC_LIST

    def __call__(
        self,
        positions: Float[Array | np.ndarray, "n d"],
        neighbors: NeighborList | None = None,
        *,
        space: AbstractSpace | None = None,
        **params,
    ) -> Scalar:
        unknown = set(params) - {"params"}
        if unknown:
            raise ValueError(f"EMT: unknown parameters {sorted(unknown)}; allowed: ['params']")
        table = params.get("params", self.params)
        space = self.space if space is None else space
        positions = jnp.asarray(positions)
        n = positions.shape[0]
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"EMT: positions must have shape (n, 3), got {positions.shape}")
        if n != self.species.shape[0]:
            raise ValueError(
                f"EMT: positions has {n} atoms but the energy was built for {self.species.shape[0]}"
            )
        dtype = positions.dtype
        if neighbors is None:
            a, b, r2, valid = self._dense_pairs(positions, space)
        else:
            check_box(space, RC_LIST)
            pairs = pair_indices(n, neighbors, cutoff=RC_LIST)
            i, j = pairs[:, 0], pairs[:, 1]
            r2 = sum(c * c for c in space.pair_components(positions, i, j))
            # Each unordered pair contributes to both atoms: make it ordered both ways.
            a, b = jnp.concatenate([i, j]), jnp.concatenate([j, i])
            r2 = jnp.concatenate([r2, r2])
            valid = a < n
        return _emt_energy(table.astype(dtype), self.species, a, b, r2, valid, n)

    def _dense_pairs(self, positions, space):
        n = positions.shape[0]
        d = space.displacement(positions[None, :, :], positions[:, None, :])  # r_b - r_a
        shifts = jnp.asarray(self.images, positions.dtype)
        if space.periodic:
            cell = space.cell.astype(positions.dtype)  # pyright: ignore[reportAttributeAccessIssue]
            offsets = exact_matmul(shifts, cell)
        else:
            offsets = shifts
        d = d[None] + offsets[:, None, None, :]  # (images, n, n, 3)
        r2 = jnp.sum(d * d, axis=-1)
        zero = np.all(np.asarray(self.images) == 0, axis=1)
        self_pair = jnp.asarray(zero)[:, None, None] & jnp.eye(n, dtype=bool)[None]
        idx = jnp.arange(n)
        a = jnp.broadcast_to(idx[None, :, None], r2.shape).reshape(-1)
        b = jnp.broadcast_to(idx[None, None, :], r2.shape).reshape(-1)
        return a, b, r2.reshape(-1), ~self_pair.reshape(-1)


def _image_shifts(space, cutoff):
    """Lattice translations (in cell vectors) that can bring an image within `cutoff`."""
    if isinstance(space, FreeSpace) or not space.periodic:
        return ((0, 0, 0),)
    widths = box_widths(space)
    if widths is None or not is_concrete(widths):
        raise ValueError("EMT: the periodic cell must be concrete when the energy is built")
    # Minimum-image fractional components lie in [-1/2, 1/2]; an image within the cutoff
    # needs |s_k| <= cutoff / width_k.
    reach = [max(0, math.ceil(cutoff / float(w) - 0.5)) for w in np.asarray(widths)]
    ranges = [range(-m, m + 1) for m in reach]
    return tuple((x, y, z) for x in ranges[0] for y in ranges[1] for z in ranges[2])


def _gammas(s0, eta2, kappa):
    nn = jnp.asarray([12.0, 6.0, 24.0], s0.dtype)
    r = BETA * s0[:, None] * jnp.sqrt(jnp.asarray([1.0, 2.0, 3.0], s0.dtype))[None, :]
    w = 1.0 / (1.0 + jnp.exp(ACUT * (r - RC)))
    x = nn[None, :] * w / 12.0
    gamma1 = jnp.sum(x * jnp.exp(-eta2[:, None] * (r - BETA * s0[:, None])), axis=1)
    gamma2 = jnp.sum(x * jnp.exp(-kappa[:, None] / BETA * (r - BETA * s0[:, None])), axis=1)
    return gamma1, gamma2


def _emt_energy(table, species, a, b, r2, valid, n):
    """Total EMT energy from ordered contributions (a <- b at squared distance r2)."""
    E0, s0, V0, eta2, kappa, lam, n0 = (table[:, k] for k in range(7))
    s0 = s0 * BOHR
    eta2, kappa, lam = eta2 / BOHR, kappa / BOHR, lam / BOHR
    n0 = n0 / BOHR**3
    gamma1, gamma2 = _gammas(s0, eta2, kappa)
    dtype = r2.dtype
    inside = valid & (r2 < RC_LIST**2)
    # Masked pairs (padding, the atom itself, beyond the cutoff) get a harmless distance,
    # so their masked gradient is zero rather than NaN.
    r = jnp.sqrt(jnp.where(inside, r2, jnp.full((), RC, dtype)))
    w = jnp.where(inside, 1.0 / (1.0 + jnp.exp(ACUT * (r - RC))), 0.0)
    sa = species[jnp.minimum(a, n - 1)]
    sb = species[jnp.minimum(b, n - 1)]
    chi = n0[sb] / n0[sa]
    seg = jnp.where(inside, a, n)
    sigma1 = (
        jnp.zeros((n + 1,), dtype)
        .at[seg]
        .add(chi * w * jnp.exp(-eta2[sb] * (r - BETA * s0[sb])))[:n]
    )
    # Ordered pairs count each unordered pair twice: half the pair term from each side.
    c = -0.5 * V0 / gamma2
    pair = (
        0.5
        * w
        * (
            c[sa] * chi * jnp.exp(-kappa[sb] * (r / BETA - s0[sb]))
            + c[sb] / chi * jnp.exp(-kappa[sa] * (r / BETA - s0[sa]))
        )
    )
    e_pair = jnp.sum(jnp.where(inside, pair, 0.0))
    s = species
    has = sigma1 > 0
    # An atom with no neighbour has sigma1 = 0 and E_c = 0 (the limit ds -> inf).
    ratio = jnp.where(has, sigma1 / (12.0 * gamma1[s]), 1.0)
    ds = -jnp.log(ratio) / (BETA * eta2[s])
    lds = lam[s] * ds
    ec = E0[s] * (1.0 + lds) * jnp.exp(-lds) + 6.0 * V0[s] * jnp.exp(-kappa[s] * ds)
    ec = jnp.where(has, ec, 0.0)
    return jnp.sum(ec - E0[s]) + e_pair
