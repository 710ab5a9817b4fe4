"""Structures and trajectories through ASE (`ase.io`: xyz, extxyz, ...).

ASE is an optional dependency, imported only here, when a reader or writer is called.
Values pass through in ASE's units (Angstrom, eV, amu) without conversion.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, Int
from ._space import AbstractSpace, FreeSpace, PeriodicBox, TriclinicBox


def _ase():
    try:
        import ase
        import ase.io
    except ImportError as e:  # pragma: no cover - exercised only without ASE
        raise ImportError(
            "diffsim.molecular I/O needs ASE: pip install ase (or diffsim[molecular])"
        ) from e
    return ase


class Structure(eqx.Module):
    """A configuration read from a file.

    - `positions`: shape `(n, 3)`; `numbers`: atomic numbers, shape `(n,)`.
    - `species`: shape `(n,)`, indices into `elements` (sorted atomic numbers present).
    - `space`: `FreeSpace`, `PeriodicBox` or `TriclinicBox` from the cell and pbc.
    - `masses`: shape `(n,)`; `velocities`: shape `(n, 3)` or `None`.
    - `energy`, `forces`: stored values if the file had them, else `None`.
    """

    positions: Float[Array, "n 3"]
    numbers: Int[Array, " n"]
    species: Int[Array, " n"]
    elements: tuple[int, ...] = eqx.field(static=True)
    space: AbstractSpace
    masses: Float[Array, " n"]
    velocities: Float[Array, "n 3"] | None = None
    energy: Array | None = None
    forces: Float[Array, "n 3"] | None = None


def space_from_atoms(atoms) -> AbstractSpace:
    """Gives the space of an `ase.Atoms`: free, orthorhombic or triclinic.

    **Raises:** `ValueError` for mixed periodicity (some axes periodic, some not).
    """
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not pbc.any():
        return FreeSpace()
    if not pbc.all():
        raise ValueError(f"mixed periodic boundaries pbc={pbc.tolist()} are not supported")
    cell = np.asarray(atoms.cell[:], dtype=np.float64)
    if np.allclose(cell, np.diag(np.diag(cell))):
        return PeriodicBox(jnp.asarray(np.diag(cell)))
    return TriclinicBox(jnp.asarray(cell))


def from_atoms(atoms) -> Structure:
    """Gives a `Structure` from an `ase.Atoms` (stored energy/forces kept if present)."""
    numbers = np.asarray(atoms.numbers)
    elements = tuple(int(z) for z in np.unique(numbers))
    species = np.searchsorted(np.asarray(elements), numbers)
    velocities = atoms.get_velocities() if atoms.has("momenta") else None
    energy = forces = None
    if atoms.calc is not None:
        res = getattr(atoms.calc, "results", {})
        energy = res.get("energy")
        forces = res.get("forces")
    return Structure(
        jnp.asarray(atoms.positions),
        jnp.asarray(numbers),
        jnp.asarray(species),
        elements,
        space_from_atoms(atoms),
        jnp.asarray(atoms.get_masses()),
        None if velocities is None else jnp.asarray(velocities),
        None if energy is None else jnp.asarray(energy),
        None if forces is None else jnp.asarray(forces),
    )


def to_atoms(
    positions,
    numbers=None,
    space: AbstractSpace | None = None,
    *,
    velocities=None,
    energy=None,
    forces=None,
):
    """Gives an `ase.Atoms` (with a single-point calculator holding `energy`/`forces`).

    `numbers` defaults to argon (18) for every atom; `space` to free space.
    """
    ase = _ase()
    from ase.calculators.singlepoint import SinglePointCalculator

    positions = np.asarray(positions, dtype=np.float64)
    n = positions.shape[0]
    numbers = np.full(n, 18) if numbers is None else np.asarray(numbers)
    if numbers.shape != (n,):
        raise ValueError(f"numbers has shape {numbers.shape}, positions has {n} atoms")
    if space is None or isinstance(space, FreeSpace):
        atoms = ase.Atoms(numbers=numbers, positions=positions, pbc=False)
    else:
        if isinstance(space, TriclinicBox):
            cell = np.asarray(space.cell)
        else:
            assert isinstance(space, PeriodicBox), type(space)
            cell = np.diag(np.asarray(space.lengths))
        atoms = ase.Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
    if velocities is not None:
        atoms.set_velocities(np.asarray(velocities, dtype=np.float64))
    if energy is not None or forces is not None:
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=None if energy is None else float(energy),
            forces=None if forces is None else np.asarray(forces, dtype=np.float64),
        )
    return atoms


def read_structure(path, index: int = -1, format: str | None = None) -> Structure:
    """Gives frame `index` of a structure file read by `ase.io.read` (xyz, extxyz, ...)."""
    ase = _ase()
    return from_atoms(ase.io.read(path, index=index, format=format))


def read_trajectory(path, format: str | None = None) -> tuple[Array, Structure]:
    """Gives `(positions (t, n, 3), first frame)` of a trajectory file.

    **Raises:** `ValueError` if the frames disagree on the number of atoms.
    """
    ase = _ase()
    frames = ase.io.read(path, index=":", format=format)
    assert isinstance(frames, list)  # index=":" gives every frame
    sizes = {len(a) for a in frames}
    if len(sizes) != 1:
        raise ValueError(f"read_trajectory: frames have different atom counts {sorted(sizes)}")
    return jnp.asarray(np.stack([a.positions for a in frames])), from_atoms(frames[0])


def write_structure(path, positions, numbers=None, space=None, *, format=None, **values) -> None:
    """Writes one frame (extxyz keeps the cell, velocities, energy and forces)."""
    ase = _ase()
    ase.io.write(path, to_atoms(positions, numbers, space, **values), format=format)


def write_trajectory(
    path, trajectory, numbers=None, space=None, *, energies=None, forces=None, format=None
) -> None:
    """Writes frames of shape `(t, n, 3)` to one file, optionally with per-frame
    `energies` (shape `(t,)`) and `forces` (shape `(t, n, 3)`) for extxyz.
    """
    ase = _ase()
    traj = np.asarray(trajectory)
    if traj.ndim != 3:
        raise ValueError(f"trajectory must have shape (t, n, d), got {traj.shape}")
    frames = [
        to_atoms(
            traj[t],
            numbers,
            space,
            energy=None if energies is None else energies[t],
            forces=None if forces is None else np.asarray(forces[t]),
        )
        for t in range(traj.shape[0])
    ]
    ase.io.write(path, frames, format=format)
