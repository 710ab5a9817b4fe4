"""The data container for learned potentials: `Dataset`, labelled frames of one system.

A `Dataset` holds frames of one system (fixed atoms): positions, energies and forces
labelled by a reference calculator, with the generation settings in `info`. It checks
its fields when made (shapes, finite values, cells), and gives subsets, random splits,
each frame's space and `ase.Atoms`, and summary statistics. Files are in `_files.py`,
the reference generators in `_reference.py`, the cache in `_cache.py`.

Units are ASE's: Angstrom, eV, eV/Angstrom.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..molecular import AbstractSpace, FreeSpace, PeriodicBox, TriclinicBox


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Labelled frames of one system: every frame has the same atoms in the same order.

    **Fields** (NumPy arrays, copied and made read-only; `B` frames of `n` atoms):

    - `numbers`: shape `(n,)`, atomic numbers.
    - `positions`: shape `(B, n, 3)`, float64, Angstrom.
    - `energies`: shape `(B,)`, eV. `forces`: shape `(B, n, 3)`, eV/Angstrom.
    - `cells`: shape `(B, 3, 3)` (rows are lattice vectors, fully periodic), or `None`
      for free space.
    - `info`: JSON-serialisable dict of generation settings (`generator`, `system`,
      `settings`, `method`, `versions`, timings, ...).

    **Raises:** `ValueError` naming the field and the shape received for a wrong shape,
    dtype, a NaN/inf value, a singular cell or an `info` that is not JSON-serialisable.

    **Example:** `train, val, test = ds.split(1000, 100, 400, seed=0)`;
    `ds.space(0)` gives the frame's `FreeSpace`/`PeriodicBox`/`TriclinicBox`.
    """

    numbers: np.ndarray
    positions: np.ndarray
    energies: np.ndarray
    forces: np.ndarray
    cells: np.ndarray | None = None
    info: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        numbers = np.asarray(self.numbers)
        if numbers.ndim != 1 or numbers.shape[0] == 0:
            raise ValueError(
                f"Dataset: numbers must have shape (n,) with n >= 1, got shape {numbers.shape}"
            )
        if numbers.dtype.kind not in "iu":
            raise ValueError(f"Dataset: numbers must be integers, got dtype {numbers.dtype}")
        if numbers.min() < 1 or numbers.max() > 118:
            raise ValueError(
                f"Dataset: numbers must be atomic numbers in 1..118, got {np.unique(numbers)}"
            )
        n = numbers.shape[0]
        positions = _float_field("positions", self.positions, (None, n, 3))
        b = positions.shape[0]
        energies = _float_field("energies", self.energies, (b,))
        forces = _float_field("forces", self.forces, (b, n, 3))
        cells = None
        if self.cells is not None:
            cells = _float_field("cells", self.cells, (b, 3, 3))
            dets = np.abs(np.linalg.det(cells)) if b else np.zeros(0)
            if np.any(dets < 1e-6):
                k = int(np.argmax(dets < 1e-6))
                raise ValueError(f"Dataset: cells[{k}] is singular (|det| = {dets[k]:.3g})")
        if not isinstance(self.info, dict):
            raise ValueError(f"Dataset: info must be a dict, got {type(self.info).__name__}")
        try:
            info = json.loads(json.dumps(self.info, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise ValueError(f"Dataset: info must be JSON-serialisable: {e}") from None
        numbers = numbers.astype(np.int64)
        numbers.flags.writeable = False
        for name, value in [
            ("numbers", numbers),
            ("positions", positions),
            ("energies", energies),
            ("forces", forces),
            ("cells", cells),
            ("info", info),
        ]:
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return self.positions.shape[0]

    def __repr__(self) -> str:
        where = "periodic" if self.periodic else "free space"
        system = self.info.get("system", "?")
        return f"Dataset({len(self)} frames, {self.formula} ({system}), {where})"

    @property
    def n_atoms(self) -> int:
        """The number of atoms in every frame."""
        return self.numbers.shape[0]

    @property
    def periodic(self) -> bool:
        """Whether the frames are periodic (`cells` given)."""
        return self.cells is not None

    @property
    def elements(self) -> tuple[int, ...]:
        """The sorted atomic numbers present."""
        return tuple(int(z) for z in np.unique(self.numbers))

    @property
    def species(self) -> np.ndarray:
        """Shape `(n,)`: each atom's index into `elements`."""
        return np.searchsorted(np.asarray(self.elements), self.numbers)

    @property
    def formula(self) -> str:
        """The chemical formula, e.g. `C2H6O`."""
        from ase.formula import Formula

        return str(Formula.from_list(_symbols(self.numbers)).format("hill"))

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """Gives the frames `indices` (integers, in that order) with the same `info`."""
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise ValueError(
                f"subset: indices must be a 1-d integer array, got shape {idx.shape} "
                f"dtype {idx.dtype}"
            )
        return Dataset(
            self.numbers,
            self.positions[idx],
            self.energies[idx],
            self.forces[idx],
            None if self.cells is None else self.cells[idx],
            self.info,
        )

    def split(
        self, n_train: int, n_val: int, n_test: int, *, seed: int
    ) -> tuple[Dataset, Dataset, Dataset]:
        """Gives disjoint random `(train, val, test)` subsets of the given sizes.

        The frames are permuted with `numpy.random.default_rng(seed)`; the same seed gives
        the same split. **Raises:** `ValueError` if a size is negative or they sum to more
        than `len(self)`.
        """
        sizes = (n_train, n_val, n_test)
        if any(isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0 for s in sizes):
            raise ValueError(f"split: sizes must be integers >= 0, got {sizes}")
        if sum(sizes) > len(self):
            raise ValueError(
                f"split: n_train + n_val + n_test = {sum(sizes)} exceeds the {len(self)} frames"
            )
        perm = np.random.default_rng(seed).permutation(len(self))
        a, b = n_train, n_train + n_val
        return self.subset(perm[:a]), self.subset(perm[a:b]), self.subset(perm[b : b + n_test])

    def space(self, i: int) -> AbstractSpace:
        """Gives the space of frame `i`: `FreeSpace`, `PeriodicBox` (a diagonal cell) or
        `TriclinicBox`."""
        i = self._index(i)
        if self.cells is None:
            return FreeSpace()
        cell = self.cells[i]
        if not np.any(cell - np.diag(np.diag(cell))):
            return PeriodicBox(jnp.asarray(np.diag(cell)))
        return TriclinicBox(jnp.asarray(cell))

    def to_atoms(self, i: int):
        """Gives frame `i` as an `ase.Atoms` with a single-point calculator (energy, forces)."""
        import ase
        from ase.calculators.singlepoint import SinglePointCalculator

        i = self._index(i)
        if self.cells is None:
            atoms = ase.Atoms(numbers=self.numbers, positions=self.positions[i], pbc=False)
        else:
            atoms = ase.Atoms(
                numbers=self.numbers, positions=self.positions[i], cell=self.cells[i], pbc=True
            )
        atoms.calc = SinglePointCalculator(
            atoms, energy=float(self.energies[i]), forces=self.forces[i].copy()
        )
        return atoms

    def min_distances(self) -> np.ndarray:
        """Gives shape `(B,)`: each frame's smallest interatomic distance (minimum image,
        including an atom's own periodic images), in Angstrom."""
        return np.array(
            [
                _min_distance(self.positions[i], None if self.cells is None else self.cells[i])
                for i in range(len(self))
            ]
        )

    def _index(self, i) -> int:
        if isinstance(i, bool) or not isinstance(i, int | np.integer):
            raise TypeError(f"frame index must be an integer, got {type(i).__name__}")
        if not -len(self) <= i < len(self):
            raise IndexError(f"frame {i} out of range for {len(self)} frames")
        return int(i) % len(self)


def dataset_statistics(ds: Dataset) -> dict[str, Any]:
    """Gives summary numbers: frames, atoms, formula, energy per atom (mean, std over
    frames, eV), force RMS and maximum (eV/Angstrom), smallest interatomic distance."""
    e = ds.energies / ds.n_atoms
    return {
        "n_configs": len(ds),
        "n_atoms": ds.n_atoms,
        "formula": ds.formula,
        "periodic": ds.periodic,
        "energy_mean_per_atom_eV": float(e.mean()),
        "energy_std_per_atom_eV": float(e.std()),
        "force_rms_eV_per_A": float(np.sqrt(np.mean(ds.forces**2))),
        "force_max_eV_per_A": float(np.max(np.linalg.norm(ds.forces, axis=-1))),
        "min_distance_A": float(ds.min_distances().min()),
    }


# --- internals ---------------------------------------------------------------------


def _float_field(name: str, value, shape: tuple) -> np.ndarray:
    a = np.asarray(value)
    want = "(" + ", ".join("B" if s is None else str(s) for s in shape)
    want += ",)" if len(shape) == 1 else ")"
    if a.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, a.shape)):
        raise ValueError(f"Dataset: {name} must have shape {want}, got shape {a.shape}")
    if a.dtype.kind not in "fiu":
        raise ValueError(f"Dataset: {name} must be real numbers, got dtype {a.dtype}")
    a = np.array(a, dtype=np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        where = tuple(int(x) for x in np.argwhere(bad)[0])
        raise ValueError(f"Dataset: {name} (shape {a.shape}) contains NaN or inf, first at {where}")
    a.flags.writeable = False
    return a


def _symbols(numbers) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[int(z)] for z in numbers]


def _min_distance(positions: np.ndarray, cell: np.ndarray | None) -> float:
    d = positions[:, None, :] - positions[None, :, :]
    n = positions.shape[0]
    if cell is None:
        r2 = np.sum(d * d, axis=-1)
        r2[np.arange(n), np.arange(n)] = np.inf
        return float(np.sqrt(r2.min())) if n > 1 else float("inf")
    s = d @ np.linalg.inv(cell)
    s -= np.round(s)
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.float64)
    best = np.inf
    for shift in shifts:
        v = (s + shift) @ cell
        r2 = np.sum(v * v, axis=-1)
        if not shift.any():
            r2[np.arange(n), np.arange(n)] = np.inf
        best = min(best, float(r2.min()))
    return float(np.sqrt(best))
