"""Learned interatomic potentials: energy models trained on reference data, built on the
MD engine in `diffsim.molecular`.

- Models (equinox modules): `SchNet` (invariant) and `PaiNN` (E(3)-equivariant), from
  `Edges` (pairs with a Bessel radial basis and a smooth polynomial envelope). A model is
  an energy like any other: `model.bind(species, space)` is a `diffsim.molecular`
  `AbstractEnergy`, so forces are `-jax.grad(E)` and it drives `NVE`, `Langevin` and
  `simulate`.
- Data: `Dataset` (labelled frames of one system), `.npz`/`.extxyz` files
  (`save_dataset`, `load_dataset`), reference generators (`generate_molecule` by
  GFN-xTB, `generate_copper` by EMT, `generate_lj_clusters`), and a cache
  (`load_or_generate`).
- Training: `train_potential` (force matching through `diffsim.fit`), `evaluate`,
  `save_model`/`load_model` (no pickle).
- ASE: `DiffsimCalculator(model)` and `predict(model, atoms)` (ASE is imported on first
  use of these two).

**Example:**

```python
import jax, diffsim.potentials as pot
data = pot.load_or_generate("ethanol", 1500)              # GFN2-xTB labels, cached
train, val, test = data.split(1000, 100, 300, seed=0)
model = pot.PaiNN(data.elements, cutoff=5.0, features=32, key=jax.random.key(0))
model = pot.train_potential(model, train, val, steps=5000, key=jax.random.key(1)).model
pot.evaluate(model, test)                                  # meV/atom, meV/Angstrom
```
"""

from ._cache import (
    DATASET_SYSTEMS as DATASET_SYSTEMS,
    cache_path as cache_path,
    default_cache_dir as default_cache_dir,
    load_or_generate as load_or_generate,
)
from ._dataset import Dataset as Dataset, dataset_statistics as dataset_statistics
from ._files import load_dataset as load_dataset, save_dataset as save_dataset
from ._layers import (
    MLP as MLP,
    Edges as Edges,
    bessel_basis as bessel_basis,
    build_edges as build_edges,
    linear as linear,
    per_row as per_row,
    polynomial_envelope as polynomial_envelope,
    shifted_softplus as shifted_softplus,
)
from ._models import (
    AbstractEnergyModel as AbstractEnergyModel,
    LearnedEnergy as LearnedEnergy,
    PaiNN as PaiNN,
    SchNet as SchNet,
    astype as astype,
    make_model as make_model,
)
from ._reference import (
    generate_copper as generate_copper,
    generate_lj_clusters as generate_lj_clusters,
    generate_molecule as generate_molecule,
)
from ._saving import load_model as load_model, save_model as save_model
from ._training import (
    TrainResult as TrainResult,
    batch_energy_and_forces as batch_energy_and_forces,
    energy_and_forces as energy_and_forces,
    evaluate as evaluate,
    fit_energy_scale as fit_energy_scale,
    train_potential as train_potential,
)


def __getattr__(name):
    # The ASE calculator imports ASE, an optional dependency: load it on first use.
    if name in ("DiffsimCalculator", "predict"):
        from . import _calculator

        return getattr(_calculator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
