"""Molecular dynamics and learned potentials: spaces, neighbour lists, classical
potentials, integrators, E(3)-equivariant energy models, reference data sets, force
matching and an ASE calculator.

Forces are `-jax.grad(energy)` with respect to positions, for all atoms in one
backward pass; integrators are steps for `diffsim.rollout`, so trajectories are
differentiable (velocity Verlet is exactly invertible: `grad=Reversible(vv.inverse)`).
A learned model (`PaiNN`, `SchNet`) is an energy like any other: `model.bind(species,
space)` drives the same integrators, and `DiffsimCalculator(model)` drives ASE.
"""

from ._datasets import (
    DATASET_SYSTEMS as DATASET_SYSTEMS,
    Dataset as Dataset,
    cache_path as cache_path,
    dataset_statistics as dataset_statistics,
    generate_copper as generate_copper,
    generate_lj_clusters as generate_lj_clusters,
    generate_molecule as generate_molecule,
    load_dataset as load_dataset,
    load_or_generate as load_or_generate,
    save_dataset as save_dataset,
)
from ._integrators import (
    AbstractIntegrator as AbstractIntegrator,
    Langevin as Langevin,
    MDState as MDState,
    VelocityVerlet as VelocityVerlet,
    simulate as simulate,
)
from ._io import (
    Structure as Structure,
    from_atoms as from_atoms,
    read_structure as read_structure,
    read_trajectory as read_trajectory,
    space_from_atoms as space_from_atoms,
    to_atoms as to_atoms,
    write_structure as write_structure,
    write_trajectory as write_trajectory,
)
from ._models import (
    AbstractEnergyModel as AbstractEnergyModel,
    LearnedEnergy as LearnedEnergy,
    PaiNN as PaiNN,
    SchNet as SchNet,
    astype as astype,
    bessel_basis as bessel_basis,
    make_model as make_model,
    polynomial_envelope as polynomial_envelope,
)
from ._neighbors import (
    NeighborList as NeighborList,
    all_pairs as all_pairs,
    neighbor_list as neighbor_list,
    reallocate as reallocate,
    update_neighbors as update_neighbors,
)
from ._observables import (
    check_positions as check_positions,
    kinetic_energy as kinetic_energy,
    min_distance as min_distance,
    msd as msd,
    pressure as pressure,
    rdf as rdf,
    stress as stress,
    temperature as temperature,
)
from ._potentials import (
    AbstractCutoff as AbstractCutoff,
    AbstractEnergy as AbstractEnergy,
    AbstractKernel as AbstractKernel,
    HarmonicAngles as HarmonicAngles,
    HarmonicBonds as HarmonicBonds,
    LennardJones as LennardJones,
    Morse as Morse,
    NoCutoff as NoCutoff,
    PairEnergy as PairEnergy,
    Shifted as Shifted,
    SoftSphere as SoftSphere,
    SumEnergy as SumEnergy,
    Switched as Switched,
    lennard_jones as lennard_jones,
    morse as morse,
    soft_sphere as soft_sphere,
)
from ._setup import lattice as lattice, random_velocities as random_velocities
from ._space import (
    AbstractSpace as AbstractSpace,
    FreeSpace as FreeSpace,
    PeriodicBox as PeriodicBox,
    TriclinicBox as TriclinicBox,
)
from ._training import (
    TrainResult as TrainResult,
    batch_energy_and_forces as batch_energy_and_forces,
    energy_and_forces as energy_and_forces,
    evaluate as evaluate,
    fit_energy_scale as fit_energy_scale,
    load_model as load_model,
    save_model as save_model,
    train_potential as train_potential,
)


def __getattr__(name):
    # The ASE calculator imports ASE, an optional dependency: load it on first use.
    if name in ("DiffsimCalculator", "predict"):
        from . import _calculator

        return getattr(_calculator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
