"""Reference datasets for learned interatomic potentials: generation, caching and files.

A `Dataset` holds frames of one system (fixed atoms): positions, energies and forces
labelled by a reference calculator, with the generation settings in `info`. Three
generators sample configurations with ASE's Langevin dynamics (and, for copper,
strained and rattled cells) and label them: Lennard-Jones argon clusters (ASE's
`LennardJones` with a smooth cutoff), bulk copper (ASE's `EMT`) and small molecules
(GFN-xTB through the optional `tblite`). Nothing is downloaded.

Datasets are written to `.npz` (NumPy arrays and the info as JSON; read without pickle)
or `.extxyz` (full float precision, readable by `ase.io.read`). `load_or_generate`
keeps a cache on disk: a dataset is generated once and reused while its settings match.

Units are ASE's: Angstrom, eV, eV/Angstrom.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import inspect
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._space import AbstractSpace, FreeSpace, PeriodicBox, TriclinicBox

DATASET_SYSTEMS = ("ethanol", "malonaldehyde", "copper", "lj_cluster")
_SUFFIXES = (".npz", ".extxyz")
_INFO_KEY = "diffsim_dataset"
_NPZ_FORMAT = "diffsim.Dataset/1"
_UNITS = {"length": "Angstrom", "energy": "eV", "force": "eV/Angstrom"}
_XTB_METHODS = ("GFN2-xTB", "GFN1-xTB", "IPEA1-xTB")

# Malonaldehyde (C3H4O2, the enol HO-CH=CH-CHO with its intramolecular hydrogen bond)
# is not in ASE's g2 collection: a planar Cs geometry optimised with GFN2-xTB
# (O-H 1.00, H...O 1.72, C-O 1.31, C=O 1.23, C=C 1.36, C-C 1.44 Angstrom).
_MALONALDEHYDE = (
    ("C", (-1.1918, -0.6649, 0.0)),
    ("C", (-0.0150, -1.3409, 0.0)),
    ("C", (1.2226, -0.6153, 0.0)),
    ("O", (-1.2942, 0.6418, 0.0)),
    ("O", (1.3051, 0.6073, 0.0)),
    ("H", (-0.3667, 1.0138, 0.0)),
    ("H", (-2.1480, -1.1782, 0.0)),
    ("H", (0.0028, -2.4157, 0.0)),
    ("H", (2.1388, -1.2278, 0.0)),
)
_MOLECULE_ALIASES = {"ethanol": "CH3CH2OH"}


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


# --- files -------------------------------------------------------------------------


def save_dataset(path: str | os.PathLike, ds: Dataset) -> Path:
    """Writes `ds` to `path` (`.npz` or `.extxyz`) atomically; gives the path.

    `.npz` holds the arrays and `info` as a JSON string; `.extxyz` one frame per block,
    floats written with full precision (round trips exactly), the info JSON in the first
    frame's `diffsim_dataset` key. The file appears complete or not at all.

    **Raises:** `ValueError` for another suffix; `FileNotFoundError` if the directory does
    not exist.
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"save_dataset: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if suffix == ".npz":
                _write_npz(f, ds)
            else:
                f.write(_extxyz_text(ds).encode())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Reads a dataset written by `save_dataset` (or any extxyz file whose frames have
    the same atoms with energies and forces).

    **Raises:** `FileNotFoundError` for a missing file; `ValueError` naming the file for
    an unsupported suffix or malformed content.
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_dataset: no such file {path}")
    try:
        return _read_npz(path) if suffix == ".npz" else _read_extxyz(path)
    except _Malformed as e:
        raise ValueError(f"{path}: {e}") from None
    except ValueError as e:  # Dataset validation of the content read
        raise ValueError(f"{path}: {e}") from e


class _Malformed(Exception):
    pass


def _suffix(path: Path) -> str:
    if path.suffix not in _SUFFIXES:
        raise ValueError(
            f"{path}: unsupported dataset suffix {path.suffix!r} (use {' or '.join(_SUFFIXES)})"
        )
    return path.suffix


def _write_npz(f, ds: Dataset) -> None:
    arrays = {
        "format": np.array(_NPZ_FORMAT),
        "numbers": ds.numbers,
        "positions": ds.positions,
        "energies": ds.energies,
        "forces": ds.forces,
        "info": np.array(json.dumps(ds.info)),
    }
    if ds.cells is not None:
        arrays["cells"] = ds.cells
    np.savez(f, **arrays)


def _read_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"numbers", "positions", "energies", "forces", "info"} - set(z.files)
            if missing:
                raise _Malformed(f"not a diffsim dataset (missing arrays {sorted(missing)})")
            if "format" in z.files and str(z["format"]) != _NPZ_FORMAT:
                raise _Malformed(f"unknown dataset format {str(z['format'])!r}")
            arrays = {k: z[k] for k in z.files}
    except _Malformed:
        raise
    except Exception as e:  # zipfile/format errors surface as many types
        raise _Malformed(f"cannot read as .npz: {type(e).__name__}: {e}") from None
    try:
        info = json.loads(str(arrays["info"]))
    except json.JSONDecodeError as e:
        raise _Malformed(f"malformed info JSON: {e}") from None
    return Dataset(
        arrays["numbers"],
        arrays["positions"],
        arrays["energies"],
        arrays["forces"],
        arrays.get("cells"),
        info,
    )


def _escape(text: str) -> str:
    # ASE's extxyz reader takes a backslash to mean "next character verbatim".
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _extxyz_text(ds: Dataset) -> str:
    # Written here rather than by ase.io.write, which rounds positions and forces to
    # 8 decimals; %.17g round-trips float64 exactly and ase.io.read parses it.
    symbols = _symbols(ds.numbers)
    width = max(len(s) for s in symbols)
    info = _escape(json.dumps(ds.info, separators=(",", ":")))
    lines = []
    for b in range(len(ds)):
        header = []
        if ds.cells is not None:
            header.append('Lattice="' + " ".join(repr(float(x)) for x in ds.cells[b].ravel()) + '"')
        header.append("Properties=species:S:1:pos:R:3:forces:R:3")
        header.append(f"energy={float(ds.energies[b])!r}")
        header.append('pbc="T T T"' if ds.cells is not None else 'pbc="F F F"')
        if b == 0:
            header.append(f'{_INFO_KEY}="{info}"')
        lines.append(str(ds.n_atoms))
        lines.append(" ".join(header))
        rows = np.concatenate([ds.positions[b], ds.forces[b]], axis=1)
        for s, row in zip(symbols, rows):
            lines.append(s.ljust(width) + " " + " ".join(f"{x:.17g}" for x in row))
    return "\n".join(lines) + "\n"


def _read_extxyz(path: Path) -> Dataset:
    import ase.io

    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as e:  # ASE's parser raises many types for a malformed file
        raise _Malformed(f"malformed extxyz: {type(e).__name__}: {e}") from None
    if not frames:
        raise _Malformed("no frames")
    numbers = frames[0].numbers
    positions, energies, forces, cells = [], [], [], []
    periodic = bool(frames[0].pbc.all())
    for k, atoms in enumerate(frames):
        if not np.array_equal(atoms.numbers, numbers):
            raise _Malformed(f"frame {k} has different atoms from frame 0")
        pbc = np.asarray(atoms.pbc)
        if pbc.any() and not pbc.all():
            raise _Malformed(f"frame {k} has mixed periodicity pbc={pbc.tolist()}")
        if bool(pbc.all()) != periodic:
            raise _Malformed(f"frame {k} differs from frame 0 in periodicity")
        results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
        if "energy" not in results or "forces" not in results:
            raise _Malformed(f"frame {k} has no energy and forces")
        positions.append(atoms.positions)
        energies.append(results["energy"])
        forces.append(results["forces"])
        if periodic:
            cells.append(atoms.cell[:])
    raw = frames[0].info.get(_INFO_KEY, {})
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise _Malformed(f"malformed {_INFO_KEY} JSON: {e}") from None
    if not isinstance(raw, dict):
        raise _Malformed(f"{_INFO_KEY} is not a JSON object")
    return Dataset(
        numbers,
        np.stack(positions),
        np.asarray(energies, dtype=np.float64),
        np.stack(forces),
        np.stack(cells) if periodic else None,
        raw,
    )


# --- generators --------------------------------------------------------------------


def generate_lj_clusters(
    n_configs: int,
    *,
    n_atoms: int = 13,
    temperature_K: float = 30.0,
    timestep_fs: float = 5.0,
    stride: int = 20,
    equilibrate_steps: int = 2000,
    friction_per_fs: float = 0.005,
    sigma: float = 3.4,
    epsilon: float = 0.0104,
    seed: int = 0,
    progress: bool = False,
) -> Dataset:
    """Gives argon-like Lennard-Jones clusters in free space, labelled by ASE's
    `LennardJones` (cutoff `3 sigma`, smooth from `2 sigma`: energy and forces continuous).

    A compact cluster (the `n_atoms` fcc sites nearest a centre, relaxed with FIRE) is
    run with Langevin dynamics at `temperature_K`; after `equilibrate_steps`, a frame is
    kept every `stride` steps. LJ13 stays bound below about 35 K (epsilon/k_B = 121 K).

    **Arguments:** `sigma` (Angstrom), `epsilon` (eV); `timestep_fs`; `friction_per_fs`
    the Langevin friction (1/fs); `seed` for the velocities and noise; `progress` a bar.

    **Raises:** `ValueError` for an invalid argument; `RuntimeError` if an atom leaves
    the cluster (lower the temperature).
    """
    settings = _settings(generate_lj_clusters, locals())
    _positive(n_configs=n_configs, timestep_fs=timestep_fs, sigma=sigma, epsilon=epsilon)
    _at_least(1, stride=stride)
    _at_least(2, n_atoms=n_atoms)
    _at_least(0, temperature_K=temperature_K, equilibrate_steps=equilibrate_steps)
    _at_least(0, friction_per_fs=friction_per_fs)
    import ase
    from ase.build import bulk
    from ase.calculators.lj import LennardJones
    from ase.optimize import FIRE

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    a = np.sqrt(2.0) * 2 ** (1 / 6) * sigma  # fcc with neighbours at the LJ minimum
    k = int(np.ceil((n_atoms / 4) ** (1 / 3))) + 2
    lattice = bulk("Ar", "fcc", a=a, cubic=True).repeat(k)
    sites = lattice.positions - lattice.positions[len(lattice) // 2]
    sites = sites[np.argsort(np.linalg.norm(sites, axis=1), kind="stable")[:n_atoms]]
    atoms = ase.Atoms(numbers=np.full(n_atoms, 18), positions=sites, pbc=False)
    calc = LennardJones(sigma=sigma, epsilon=epsilon, rc=3 * sigma, ro=2 * sigma, smooth=True)
    counter = _count_calls(calc)
    atoms.calc = calc
    FIRE(atoms, logfile=None).run(fmax=1e-4, steps=2000)
    frames = _langevin_frames(
        atoms,
        n_configs,
        temperature_K=temperature_K,
        timestep_fs=timestep_fs,
        friction_per_fs=friction_per_fs,
        stride=stride,
        equilibrate_steps=equilibrate_steps,
        rng=rng,
        progress=progress,
        desc="LJ cluster",
    )
    for b, pos in enumerate(frames["positions"]):
        if not _connected(pos, 2.0 * sigma):
            raise RuntimeError(
                f"generate_lj_clusters: an atom left the cluster by frame {b} at "
                f"{temperature_K} K; lower temperature_K"
            )
    return _finish(
        "generate_lj_clusters",
        "lj_cluster",
        "LennardJones(smooth)",
        "Langevin MD of a relaxed compact cluster",
        settings,
        atoms.numbers,
        frames,
        t0,
        counter[0],
    )


def generate_copper(
    n_configs: int,
    *,
    repeat: int = 3,
    lattice_constant: float = 3.61,
    temperature_K: float = 600.0,
    timestep_fs: float = 2.0,
    stride: int = 20,
    equilibrate_steps: int = 500,
    friction_per_fs: float = 0.005,
    strain: float = 0.02,
    rattle: float = 0.05,
    seed: int = 0,
    progress: bool = False,
) -> Dataset:
    """Gives bulk fcc copper labelled by ASE's `EMT`, one cell per frame.

    The cubic cell (`lattice_constant`, repeated `repeat` times: 108 atoms for 3) gives
    `n_configs // 2` perturbed frames first (a random symmetric strain with entries in
    `[-strain, strain]`, atoms scaled with the cell, then rattled by a normal
    displacement of standard deviation `rattle` Angstrom) and then the rest as Langevin
    MD snapshots at `temperature_K` in the unstrained cell (every `stride` steps after
    `equilibrate_steps`). Positions are wrapped into the cell.

    **Raises:** `ValueError` for an invalid argument.
    """
    settings = _settings(generate_copper, locals())
    _positive(n_configs=n_configs, timestep_fs=timestep_fs, lattice_constant=lattice_constant)
    _at_least(1, repeat=repeat, stride=stride)
    _at_least(0, temperature_K=temperature_K, equilibrate_steps=equilibrate_steps)
    _at_least(0, friction_per_fs=friction_per_fs, strain=strain, rattle=rattle)
    if strain >= 0.5:
        raise ValueError(f"generate_copper: strain must be < 0.5, got {strain}")
    from ase.build import bulk
    from ase.calculators.emt import EMT

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    ideal = bulk("Cu", "fcc", a=lattice_constant, cubic=True).repeat(repeat)
    calc = EMT()
    counter = _count_calls(calc)
    n_perturbed = n_configs // 2
    frames = {"positions": [], "energies": [], "forces": [], "cells": []}
    for _ in range(n_perturbed):
        atoms = ideal.copy()
        a = rng.uniform(-strain, strain, (3, 3))
        atoms.set_cell(ideal.cell[:] @ (np.eye(3) + 0.5 * (a + a.T)), scale_atoms=True)
        atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
        atoms.wrap()
        atoms.calc = calc
        _record(frames, atoms)
    atoms = ideal.copy()
    atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
    atoms.wrap()
    atoms.calc = calc
    md = _langevin_frames(
        atoms,
        n_configs - n_perturbed,
        temperature_K=temperature_K,
        timestep_fs=timestep_fs,
        friction_per_fs=friction_per_fs,
        stride=stride,
        equilibrate_steps=equilibrate_steps,
        rng=rng,
        progress=progress,
        desc="Cu EMT",
    )
    for key in frames:
        frames[key] += md[key]
    return _finish(
        "generate_copper",
        "copper",
        "EMT",
        f"{n_perturbed} strained+rattled cells, then {n_configs - n_perturbed} Langevin MD frames",
        settings,
        ideal.numbers,
        frames,
        t0,
        counter[0],
    )


def generate_molecule(
    name: str,
    n_configs: int,
    *,
    temperature_K: float = 500.0,
    timestep_fs: float = 0.5,
    stride: int = 20,
    equilibrate_steps: int = 2000,
    friction_per_fs: float = 0.01,
    method: str = "GFN2-xTB",
    accuracy: float = 0.01,
    relax: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> Dataset:
    """Gives frames of a molecule in free space labelled by GFN-xTB (`tblite`).

    `name` is `"ethanol"` (ASE's `CH3CH2OH`), `"malonaldehyde"` (C3H4O2, the
    hydrogen-bonded enol, from built-in coordinates since ASE's g2 lacks it) or any name
    in `ase.collections.g2`. The geometry is optimised with `method` (if `relax`), run
    with Langevin dynamics at `temperature_K`, and after `equilibrate_steps` a frame is
    kept every `stride` steps. The dynamics restart each SCF from the previous step's
    solution; a kept frame is labelled by a fresh SCF (superposition-of-atomic-densities
    guess) converged to tblite's `accuracy` (smaller is tighter; its default is 1), so a
    label depends on the positions only, to about 1e-6 eV/Angstrom, not on the history.
    GFN2-xTB costs a few ms per ethanol force call. Frames are reproducible for a seed
    up to tblite's parallel summation order (`OMP_NUM_THREADS=1` makes them bitwise so).

    **Raises:** `ImportError` without tblite (`pip install 'diffsim[xtb]'`); `ValueError`
    for an unknown molecule or method or an invalid argument.
    """
    settings = _settings(generate_molecule, locals())
    _positive(n_configs=n_configs, timestep_fs=timestep_fs)
    _at_least(1, stride=stride)
    _at_least(0, temperature_K=temperature_K, equilibrate_steps=equilibrate_steps)
    _at_least(0, friction_per_fs=friction_per_fs)
    _positive(accuracy=accuracy)
    if method not in _XTB_METHODS:
        raise ValueError(f"generate_molecule: method must be one of {_XTB_METHODS}, got {method!r}")
    atoms = _build_molecule(name)
    try:
        from tblite.ase import TBLite
    except ImportError as e:
        raise ImportError(
            "generate_molecule needs tblite for GFN-xTB labels: pip install 'diffsim[xtb]'"
        ) from e
    from ase.optimize import BFGS

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    calc = TBLite(method=method, verbosity=0)
    counter = _count_calls(calc)
    atoms.calc = calc
    if relax:
        BFGS(atoms, logfile=None).run(fmax=0.01, steps=500)

    def label(frame):
        probe = frame.copy()
        probe.calc = TBLite(method=method, verbosity=0, accuracy=accuracy)
        counter[0] += 1
        return probe.get_potential_energy(), probe.get_forces()

    frames = _langevin_frames(
        atoms,
        n_configs,
        temperature_K=temperature_K,
        timestep_fs=timestep_fs,
        friction_per_fs=friction_per_fs,
        stride=stride,
        equilibrate_steps=equilibrate_steps,
        rng=rng,
        progress=progress,
        desc=name,
        label=label,
    )
    return _finish(
        "generate_molecule",
        name,
        method,
        ("Langevin MD from the optimised geometry" if relax else "Langevin MD")
        + f"; frames relabelled by a fresh SCF at accuracy {accuracy}",
        settings,
        atoms.numbers,
        frames,
        t0,
        counter[0],
        extra_versions=("tblite",),
    )


def _build_molecule(name: str):
    import ase
    from ase.build import molecule
    from ase.collections import g2

    if name == "malonaldehyde":
        symbols, positions = zip(*_MALONALDEHYDE)
        return ase.Atoms(symbols=list(symbols), positions=np.array(positions), pbc=False)
    g2_name = _MOLECULE_ALIASES.get(name, name)
    if g2_name not in g2.names:
        raise ValueError(
            f"generate_molecule: unknown molecule {name!r}; use 'ethanol', 'malonaldehyde' "
            "or a name in ase.collections.g2 (e.g. 'CH3CHO', 'C6H6')"
        )
    atoms = molecule(g2_name)
    atoms.pbc = False
    return atoms


# --- cache -------------------------------------------------------------------------

_SYSTEM_GENERATORS: dict[str, tuple[Callable[..., Dataset], dict]] = {
    "ethanol": (generate_molecule, {"name": "ethanol"}),
    "malonaldehyde": (generate_molecule, {"name": "malonaldehyde"}),
    "copper": (generate_copper, {}),
    "lj_cluster": (generate_lj_clusters, {}),
}


def cache_path(
    system: str,
    n_configs: int,
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike = "data",
    method: str | None = None,
) -> Path:
    """Gives the default cache file `cache_dir/<system>_<method>_<n_configs>_seed<seed>.extxyz`
    (method: the xTB method of a molecule, `emt` for copper, `lj` for LJ clusters)."""
    _check_system(system)
    if system in ("ethanol", "malonaldehyde"):
        label = (method or "GFN2-xTB").lower()
    else:
        label = {"copper": "emt", "lj_cluster": "lj"}[system]
    return Path(cache_dir) / f"{system}_{label}_{n_configs}_seed{seed}.extxyz"


def load_or_generate(
    system: str,
    n_configs: int,
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike = "data",
    path: str | os.PathLike | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    **settings,
) -> Dataset:
    """Gives the dataset of `system` (one of `DATASET_SYSTEMS`), generated once and cached.

    The file is `path`, or `cache_path(system, n_configs, seed=..., cache_dir=...)`. If it
    exists and was generated with the same settings (every generator argument, defaults
    included), it is read; otherwise the dataset is generated with
    `generate_molecule`/`generate_copper`/`generate_lj_clusters` (`**settings` are their
    keyword arguments, e.g. `temperature_K`, `stride`) and written there. `log` receives a
    line saying which happened.

    **Raises:** `FileExistsError` if the file exists with different settings (it is never
    overwritten); `ValueError` for an unknown system or setting.

    **Example:** `ds = load_or_generate("ethanol", 1500, seed=0)`.
    """
    _check_system(system)
    generator, fixed = _SYSTEM_GENERATORS[system]
    params = inspect.signature(generator).parameters
    allowed = sorted(set(params) - set(fixed) - {"n_configs", "seed", "progress"})
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(
            f"load_or_generate: unknown setting(s) {unknown} for {system!r} "
            f"(allowed: {', '.join(allowed)})"
        )
    kwargs = {**fixed, **settings, "seed": seed}
    requested = _settings(generator, {**kwargs, "n_configs": n_configs})
    if path is None:
        path = cache_path(
            system, n_configs, seed=seed, cache_dir=cache_dir, method=settings.get("method")
        )
    path = Path(path)
    _suffix(path)
    say = log or (lambda message: None)
    if path.exists():
        ds = load_dataset(path)
        stored = {"system": ds.info.get("system"), **(ds.info.get("settings") or {})}
        wanted = {"system": system, **requested}
        if stored != wanted:
            diffs = [
                f"{k}: cached {stored.get(k, '<missing>')!r}, requested {wanted.get(k)!r}"
                for k in sorted(set(stored) | set(wanted))
                if stored.get(k, "<missing>") != wanted.get(k)
            ]
            raise FileExistsError(
                f"{path} holds a dataset generated with different settings "
                f"({'; '.join(diffs)}); it is not overwritten: delete it or choose "
                "another path"
            )
        say(f"reusing cached dataset {path} ({len(ds)} frames, same settings)")
        return ds
    say(f"generating {n_configs} frames of {system} -> {path}")
    ds = generator(n_configs=n_configs, progress=progress, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(path, ds)
    seconds = ds.info["generation_time_s"]
    say(f"generated {len(ds)} frames in {seconds:.1f} s; cached in {path}")
    return ds


# --- internals ---------------------------------------------------------------------


def _check_system(system: str) -> None:
    if system not in DATASET_SYSTEMS:
        raise ValueError(f"unknown system {system!r}; expected one of {DATASET_SYSTEMS}")


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


def _connected(positions: np.ndarray, bond: float) -> bool:
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    adjacent = d < bond
    seen = np.zeros(len(positions), dtype=bool)
    seen[0] = True
    while True:
        grown = seen | adjacent[seen].any(axis=0)
        if (grown == seen).all():
            return bool(seen.all())
        seen = grown


def _settings(fn, local_vars: dict) -> dict:
    """The generator's arguments (defaults filled in, `progress` left out), as JSON."""
    sig = inspect.signature(fn)
    bound = sig.bind_partial(**{k: v for k, v in local_vars.items() if k in sig.parameters})
    bound.apply_defaults()
    out = {k: v for k, v in bound.arguments.items() if k != "progress"}
    return json.loads(json.dumps(out))


def _positive(**values) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not v > 0:
            raise ValueError(f"{name} must be > 0, got {v!r}")


def _at_least(lo, **values) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not v >= lo:
            raise ValueError(f"{name} must be >= {lo}, got {v!r}")


def _count_calls(calc) -> list[int]:
    """Counts the calculator's evaluations (one label = one energy+forces call)."""
    counter = [0]
    calculate = calc.calculate

    def counted(*args, **kwargs):
        counter[0] += 1
        return calculate(*args, **kwargs)

    calc.calculate = counted
    return counter


def _record(frames: dict, atoms, label=None) -> None:
    periodic = bool(atoms.pbc.all())
    if label is None:
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    else:
        energy, forces = label(atoms)
    frames["positions"].append(atoms.get_positions(wrap=periodic))
    frames["energies"].append(float(energy))
    frames["forces"].append(np.array(forces))
    if periodic:
        frames.setdefault("cells", []).append(np.array(atoms.cell[:]))


def _langevin_frames(
    atoms,
    n_frames: int,
    *,
    temperature_K,
    timestep_fs,
    friction_per_fs,
    stride,
    equilibrate_steps,
    rng,
    progress,
    desc,
    label=None,
) -> dict:
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

    thermalize_momenta(atoms, temperature_K, rng=rng)
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    dyn = Langevin(
        atoms,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )
    frames = {"positions": [], "energies": [], "forces": []}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=equilibrate_steps + n_frames * stride, desc=desc, unit="step")
    try:
        done = 0
        while done < equilibrate_steps:
            chunk = min(max(stride, 100), equilibrate_steps - done)
            dyn.run(chunk)
            done += chunk
            if bar is not None:
                bar.update(chunk)
        for _ in range(n_frames):
            dyn.run(stride)
            _record(frames, atoms, label)
            if bar is not None:
                bar.update(stride)
    finally:
        if bar is not None:
            bar.close()
    return frames


def _versions(extra: Sequence[str] = ()) -> dict[str, str]:
    out = {}
    for name in ("diffsim", "ase", "numpy", *extra):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def _finish(
    generator,
    system,
    method,
    sampling,
    settings,
    numbers,
    frames,
    t0,
    calls,
    extra_versions=(),
) -> Dataset:
    seconds = time.perf_counter() - t0
    info = {
        "generator": generator,
        "system": system,
        "method": method,
        "sampling": sampling,
        "settings": settings,
        "units": _UNITS,
        "versions": _versions(extra_versions),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "generation_time_s": round(seconds, 3),
        "label_calls": calls,
        "seconds_per_label": seconds / max(calls, 1),
    }
    cells = frames.get("cells")
    return Dataset(
        np.asarray(numbers),
        np.stack(frames["positions"]),
        np.asarray(frames["energies"], dtype=np.float64),
        np.stack(frames["forces"]),
        np.stack(cells) if cells else None,
        info,
    )
