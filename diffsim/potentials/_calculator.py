"""An ASE calculator backed by a diffsim energy model.

`DiffsimCalculator(model)` gives ASE energies, forces (`-grad E`, one backward pass)
and, for periodic cells, the stress (the strain derivative of the energy), so ASE's
molecular dynamics, optimisers and tools run on a learned potential. ASE is imported
only when this module is.
"""

from __future__ import annotations

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from ..molecular import FreeSpace, check_positions, neighbor_list, space_from_atoms, stress
from ._models import AbstractEnergyModel
from ._saving import load_model

# Above this many atoms the calculator builds a cell list instead of taking all pairs.
DENSE_LIMIT = 64


@eqx.filter_jit
def _energy_forces(model, species, positions, space, neighbors):
    e, g = jax.value_and_grad(model)(positions, species, neighbors, space=space)
    return e, -g


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


class DiffsimCalculator(Calculator):
    """ASE calculator for a diffsim energy model (`SchNet`, `PaiNN`, ...).

    **Arguments:**

    - `model`: an `AbstractEnergyModel`, or the path of a saved model / a training run
      directory (loaded with `load_model`).

    **Example:**

    ```python
    atoms.calc = DiffsimCalculator("runs/potential_train-.../")
    atoms.get_forces()
    ```
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model: AbstractEnergyModel | str | os.PathLike, **kwargs):
        super().__init__(**kwargs)
        self.model = model if isinstance(model, AbstractEnergyModel) else load_model(model)
        self._buffers: dict = {}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
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
