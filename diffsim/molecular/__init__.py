"""Molecular dynamics: spaces, neighbor lists, classical potentials and EMT, integrators
(NVE, Langevin, NPT), minimisers (FIRE, L-BFGS), observables, lattice set-up and ASE
structure I/O.

Forces are `-jax.grad(energy)` with respect to positions, for all atoms in one
backward pass; integrators are steps for `diffsim.rollout`, so trajectories are
differentiable (`NVE` is exactly invertible: `grad=Reversible(nve.inverse)`). An
energy is any `AbstractEnergy` called as `energy(positions, neighbors=None)`: the
classical pair and bonded terms here, or a learned model bound to its species
(`diffsim.potentials`, which builds on this package; this one never imports it).

**Units.** The engine is unit-agnostic: numbers go in and come out in whatever consistent
units you choose (the LJ examples use sigma = epsilon = mass = 1). With ASE structures
(`from_atoms`, `read_structure`) and the learned potentials, the units are ASE's:
lengths in Angstrom, energies in eV, masses in amu, so forces are in eV/Angstrom and the
time unit is sqrt(amu Angstrom^2 / eV) = 10.18 fs. Convert with `FS` (one femtosecond
in that time unit: `dt = 0.5 * md.FS`), `TIME_UNIT_FS` (10.18) and `KB` (Boltzmann's
constant in eV/K: `kT = md.KB * 300`). Argon: `lennard_jones(space, sigma=3.4,
epsilon=0.0104)` (Angstrom, eV); its default cutoff scales with sigma.

**Example:**

```python
import jax, diffsim.molecular as md
positions, box = md.lattice(500, 0.8)                       # fcc, 500 atoms
energy = md.lennard_jones(box, cutoff=md.Switched(2.0, 2.5))
nbrs = md.neighbor_list(positions, box, energy.cutoff_radius, skin=0.3)
v = md.random_velocities(500, 3, 1.0, key=jax.random.key(0))
nve = md.NVE(energy, dt=0.005)
state, outs = md.simulate(nve, nve.init(positions, v, nbrs), 1000)  # outs["potential"], ...
```
```
"""

from ._emt import EMT as EMT, EMT_PARAMETERS as EMT_PARAMETERS
from ._integrators import (
    NVE as NVE,
    AbstractIntegrator as AbstractIntegrator,
    Langevin as Langevin,
    MDState as MDState,
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
from ._minimize import (
    FIRE as FIRE,
    LBFGS as LBFGS,
    AbstractMinimizer as AbstractMinimizer,
    FIREState as FIREState,
    LBFGSState as LBFGSState,
    MinimizeResult as MinimizeResult,
    minimize as minimize,
)
from ._neighbors import (
    NeighborList as NeighborList,
    all_pairs as all_pairs,
    neighbor_list as neighbor_list,
    reallocate as reallocate,
    update_neighbors as update_neighbors,
)
from ._npt import (
    NPT as NPT,
    LennardJonesTail as LennardJonesTail,
    NPTState as NPTState,
    scale_space as scale_space,
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
    pair_indices as pair_indices,
    soft_sphere as soft_sphere,
)
from ._setup import lattice as lattice, random_velocities as random_velocities
from ._space import (
    AbstractSpace as AbstractSpace,
    FreeSpace as FreeSpace,
    PeriodicBox as PeriodicBox,
    TriclinicBox as TriclinicBox,
    check_box as check_box,
)
from ._units import FS as FS, KB as KB, TIME_UNIT_FS as TIME_UNIT_FS
