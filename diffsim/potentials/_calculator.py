"""An ASE calculator backed by a diffsim energy model.

`DiffsimCalculator(model)` gives ASE energies, forces (`-grad E`, one backward pass)
and, for periodic cells, the stress (the strain derivative of the energy), so ASE's
molecular dynamics, optimisers and tools run on a learned potential or on any classical
diffsim energy (`lennard_jones`, `morse`, sums of terms). ASE is imported only when this
module is. Units are ASE's: Angstrom, eV, amu.
"""

from __future__ import annotations

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from ..molecular import (
    AbstractEnergy,
    FreeSpace,
    PairEnergy,
    SumEnergy,
    check_box,
    check_positions,
    neighbor_list,
    space_from_atoms,
    stress,
)
from ._models import AbstractEnergyModel
from ._saving import load_model

# Above this many atoms the calculator builds a cell list instead of taking all pairs.
DENSE_LIMIT = 64


@eqx.filter_jit
def _energy_forces(model, species, positions, space, neighbors):
    e, g = jax.value_and_grad(model)(positions, species, neighbors, space=space)
    return e, -g


@eqx.filter_jit
def _classical_energy_forces(energy, positions, space, neighbors):
    e, g = jax.value_and_grad(lambda r: energy(r, neighbors, space=space))(positions)
    return e, -g


@eqx.filter_jit
def _classical_stress(energy, positions, space, neighbors):
    return stress(energy, positions, space, neighbors)


@eqx.filter_jit
def _stress(model, species, positions, space, neighbors):
    return stress(model.bind(species, space), positions, space, neighbors)


def predict(
    model: AbstractEnergyModel, atoms, *, floor: float = 0.3, buffers: dict | None = None
) -> dict:
    """Gives `{"energy", "forces"[, "stress"]}` (eV, eV/Angstrom, eV/Angstrom^3) for an
    `ase.Atoms`, in float64 NumPy arrays; the stress (3 x 3) only for periodic cells.

    `buffers` (a dict, updated in place) keeps the neighbor-list sizes between calls,
    so that a trajectory or a finite-difference stencil reuses one compiled function
    instead of compiling for every new number of pairs.

    **Raises:** `ValueError` for elements the model does not know, NaN positions, atoms
    closer than `floor` Angstrom, or a periodic cell narrower than twice the cutoff.

    **Example:** `predict(load_model(run_dir), ase.io.read("x.xyz"))["forces"]`.
    """
    species = model.species_of(atoms.numbers)
    space = space_from_atoms(atoms)
    dtype = model.scale.dtype
    positions = jnp.asarray(np.asarray(atoms.positions), dtype)
    if len(atoms) > 1:
        check_positions(positions, space, floor=floor)
    model.bind(species, space)  # checks the cell against the cutoff
    neighbors = None
    if len(atoms) > DENSE_LIMIT:
        b = buffers if buffers is not None else {}
        neighbors = neighbor_list(
            positions,
            space,
            model.cutoff,
            skin=0.0,
            capacity_factor=1.5,
            min_capacity=b.get("capacity", 0),
            min_cell_capacity=b.get("cell_capacity", 0),
        )
        b["capacity"], b["cell_capacity"] = neighbors.capacity, neighbors.cell_capacity
    e, f = _energy_forces(model, species, positions, space, neighbors)
    out = {"energy": float(e), "forces": np.asarray(f, np.float64)}
    if not isinstance(space, FreeSpace):
        out["stress"] = np.asarray(_stress(model, species, positions, space, neighbors), np.float64)
    return out


def _with_species(energy: AbstractEnergy, species: jax.Array) -> AbstractEnergy:
    """The energy with `species` set on every pair term that has per-species tables."""
    if isinstance(energy, SumEnergy):
        return SumEnergy(tuple(_with_species(t, species) for t in energy.terms))
    if isinstance(energy, PairEnergy) and any(
        np.ndim(v) == 2 for v in energy.kernel.params().values()
    ):
        return PairEnergy(energy.kernel, energy.space, energy.cutoff, species)
    return energy


def predict_energy(
    energy: AbstractEnergy,
    atoms,
    *,
    species: dict | None = None,
    buffers: dict | None = None,
) -> dict:
    """Gives `{"energy", "forces"[, "stress"]}` of a classical diffsim energy for an
    `ase.Atoms` (eV, eV/Angstrom, eV/Angstrom^3 when the energy's parameters are in
    Angstrom and eV); the stress only for periodic cells.

    The space is the structure's (its cell and periodicity), passed to the energy as
    `space=`. `species` maps atomic numbers (or chemical symbols) to the indices of the
    energy's `(S, S)` parameter tables; it is needed only when there are tables.

    **Raises:** `ValueError` for an element missing from `species`, or a periodic cell
    narrower than twice the cutoff.
    """
    space = space_from_atoms(atoms)
    positions = jnp.asarray(np.asarray(atoms.positions))
    if species is not None:
        table = {}
        for k, v in species.items():
            z = k if isinstance(k, int) else _atomic_number(k)
            table[z] = int(v)
        missing = sorted(set(atoms.numbers.tolist()) - set(table))
        if missing:
            raise ValueError(
                f"species: no index for atomic numbers {missing}; give one for every element "
                f"of the structure, e.g. species={{'Ar': 0}}"
            )
        energy = _with_species(
            energy, jnp.asarray([table[z] for z in atoms.numbers.tolist()], jnp.int32)
        )
    neighbors = None
    radius = energy.cutoff_radius
    if np.isfinite(radius):
        check_box(space, radius)  # the minimum image needs a cell wider than 2 cutoffs
    if len(atoms) > DENSE_LIMIT and np.isfinite(radius):
        b = buffers if buffers is not None else {}
        neighbors = neighbor_list(
            positions,
            space,
            radius,
            skin=0.0,
            capacity_factor=1.5,
            min_capacity=b.get("capacity", 0),
            min_cell_capacity=b.get("cell_capacity", 0),
        )
        b["capacity"], b["cell_capacity"] = neighbors.capacity, neighbors.cell_capacity
    e, f = _classical_energy_forces(energy, positions, space, neighbors)
    out = {"energy": float(e), "forces": np.asarray(f, np.float64)}
    if not isinstance(space, FreeSpace):
        out["stress"] = np.asarray(
            _classical_stress(energy, positions, space, neighbors), np.float64
        )
    return out


def _atomic_number(symbol) -> int:
    from ase.data import atomic_numbers

    if symbol not in atomic_numbers:
        raise ValueError(f"species: {symbol!r} is not a chemical symbol or atomic number")
    return atomic_numbers[symbol]


class DiffsimCalculator(Calculator):
    """ASE calculator for a diffsim energy: a learned model or any classical energy.

    **Arguments:**

    - `model`: one of
      - a learned `AbstractEnergyModel` (`SchNet`, `PaiNN`, ...): the species come from
        the atomic numbers it was trained on;
      - the path of a saved model or a `potential_train` run directory (`load_model`);
      - any classical `diffsim.molecular` energy (`lennard_jones(...)`, `morse(...)`,
        a sum of terms), with its parameters in Angstrom and eV. Its space is replaced
        by the structure's cell; give `species=` when its parameters are per-species
        tables.
    - `species`: for a classical energy with `(S, S)` tables only: a dict from atomic
      number or symbol to table index, e.g. `{"Ar": 0, "Kr": 1}`.

    **Raises:** `TypeError` for anything else, saying what is accepted.

    **Example:**

    ```python
    atoms.calc = DiffsimCalculator("runs/potential_train-.../")
    atoms.calc = DiffsimCalculator(md.lennard_jones(md.FreeSpace(), sigma=3.4, epsilon=0.0104))
    atoms.get_forces()
    ```
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model: AbstractEnergyModel | AbstractEnergy | str | os.PathLike,
        *,
        species: dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(model, AbstractEnergyModel | AbstractEnergy):
            self.model = model
        elif isinstance(model, str | os.PathLike):
            self.model = load_model(model)
        else:
            raise TypeError(
                "DiffsimCalculator: model must be a learned model (SchNet, PaiNN, ...), a "
                "diffsim.molecular energy (lennard_jones(...), morse(...), a sum of terms), or "
                f"the path of a saved model or potential_train run; got {type(model).__name__}"
            )
        if species is not None and not isinstance(self.model, AbstractEnergy):
            raise TypeError(
                "DiffsimCalculator: species= is for classical energies with per-species "
                "tables; a learned model knows its elements"
            )
        self.species = species
        self._buffers: dict = {}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if isinstance(self.model, AbstractEnergy):
            out = predict_energy(
                self.model, self.atoms, species=self.species, buffers=self._buffers
            )
        else:
            out = predict(self.model, self.atoms, buffers=self._buffers)
        self.results["energy"] = out["energy"]
        self.results["free_energy"] = out["energy"]
        self.results["forces"] = out["forces"]
        if "stress" in out:
            s = out["stress"]
            self.results["stress"] = np.array(
                [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]], dtype=np.float64
            )
        elif "stress" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("stress needs a periodic cell")
