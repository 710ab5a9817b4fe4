"""Units and conventions a newcomer relies on: argon LJ in Angstrom and eV with the
sigma-scaled default cutoff, the unit constants, and ASE driven by classical energies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones as AseLJ
from ase.optimize import BFGS

import diffsim.molecular as md
from diffsim.potentials import DiffsimCalculator

AR_SIGMA, AR_EPS = 3.4, 0.0104  # Angstrom, eV


def argon_cluster():
    """13 atoms: an icosahedron at the LJ minimum distance, slightly rattled."""
    phi = (1 + 5**0.5) / 2
    v = [(0, 0, 0)]
    for a in (-1, 1):
        for b in (-1, 1):
            v += [(0, a, b * phi), (a, b * phi, 0), (b * phi, 0, a)]
    v = np.array(v, float)
    v *= 2 ** (1 / 6) * AR_SIGMA / np.linalg.norm(v[1])
    return v + np.random.default_rng(0).normal(scale=0.05, size=v.shape)


def test_argon_default_cutoff_scales_with_sigma_and_matches_ase():
    r = argon_cluster()
    energy = md.lennard_jones(md.FreeSpace(), sigma=AR_SIGMA, epsilon=AR_EPS)
    assert energy.cutoff == md.Switched(2.0 * AR_SIGMA, 2.5 * AR_SIGMA)
    atoms = Atoms("Ar13", positions=r)
    atoms.calc = AseLJ(
        sigma=AR_SIGMA, epsilon=AR_EPS, rc=2.5 * AR_SIGMA, ro=2.0 * AR_SIGMA, smooth=True
    )
    e = float(jax.jit(energy)(jnp.asarray(r)))
    assert e < -0.3  # 13 atoms bound at about -44 epsilon, never the silent 0.0
    np.testing.assert_allclose(e, atoms.get_potential_energy(), rtol=1e-10)
    # sigma = 1: the same default as before (JAX MD's Switched(2.0, 2.5))
    assert md.lennard_jones(md.FreeSpace()).cutoff == md.Switched(2.0, 2.5)
    # per-species tables: the largest sigma sets the default
    tab = md.lennard_jones(
        md.FreeSpace(), sigma=jnp.array([[1.0, 1.5], [1.5, 2.0]]), species=jnp.zeros(3, jnp.int32)
    )
    assert tab.cutoff == md.Switched(4.0, 5.0)


def test_explicit_cutoffs_are_absolute_and_short_ones_raise():
    energy = md.lennard_jones(md.FreeSpace(), sigma=AR_SIGMA, cutoff=md.Shifted(8.5))
    assert energy.cutoff_radius == 8.5
    with pytest.raises(ValueError, match=r"cutoff radius 2.5 is shorter than sigma = 3.4"):
        md.lennard_jones(md.FreeSpace(), sigma=AR_SIGMA, cutoff=md.Switched(2.0, 2.5))
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        md.lennard_jones(md.FreeSpace(), sigma=-1.0)
    with pytest.raises(ValueError, match="sigma is traced"):
        jax.jit(lambda s: md.lennard_jones(md.FreeSpace(), sigma=s)(jnp.ones((2, 3))))(1.0)


def test_unit_constants_agree_with_ase():
    import ase.units

    assert md.FS == pytest.approx(ase.units.fs, rel=1e-12)
    assert md.KB == pytest.approx(ase.units.kB, rel=1e-12)
    assert md.TIME_UNIT_FS == pytest.approx(10.1805, abs=1e-4)


def test_calculator_takes_classical_energies_and_drives_ase():
    r = argon_cluster()
    atoms = Atoms("Ar13", positions=r)
    energy = md.lennard_jones(md.FreeSpace(), sigma=AR_SIGMA, epsilon=AR_EPS)
    atoms.calc = DiffsimCalculator(energy)
    ref = Atoms("Ar13", positions=r)
    ref.calc = AseLJ(
        sigma=AR_SIGMA, epsilon=AR_EPS, rc=2.5 * AR_SIGMA, ro=2.0 * AR_SIGMA, smooth=True
    )
    with jax.enable_x64(True):
        np.testing.assert_allclose(atoms.get_forces(), ref.get_forces(), rtol=1e-8, atol=1e-12)
        e0 = atoms.get_potential_energy()
        BFGS(atoms, logfile=None).run(fmax=1e-2, steps=100)
    assert atoms.get_potential_energy() < e0
    assert np.abs(atoms.get_forces()).max() < 1e-2
    # a periodic cell: the space comes from the structure, the stress from the strain
    with jax.enable_x64(True):
        fcc = Atoms(
            "Ar4",
            scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
            cell=[5.3] * 3,
            pbc=True,
        )
        fcc = fcc.repeat(2)
        short = md.lennard_jones(
            md.FreeSpace(), sigma=AR_SIGMA, epsilon=AR_EPS, cutoff=md.Switched(4.2, 5.2)
        )
        fcc.calc = DiffsimCalculator(short)
        ref = fcc.copy()
        ref.calc = AseLJ(sigma=AR_SIGMA, epsilon=AR_EPS, rc=5.2, ro=4.2, smooth=True)
        np.testing.assert_allclose(
            fcc.get_potential_energy(), ref.get_potential_energy(), rtol=1e-10
        )
        np.testing.assert_allclose(fcc.get_stress(), ref.get_stress(), rtol=1e-8, atol=1e-12)


def test_calculator_species_tables_and_wrong_arguments(unchecked):
    sigma = jnp.array([[3.4, 3.6], [3.6, 3.8]])
    energy = md.lennard_jones(
        md.FreeSpace(), sigma=sigma, epsilon=0.01, species=jnp.zeros(2, jnp.int32)
    )
    atoms = Atoms("ArKr", positions=[[0, 0, 0], [4.0, 0, 0]])
    atoms.calc = DiffsimCalculator(energy, species={"Ar": 0, 36: 1})
    s6 = (3.6 / 4.0) ** 6
    assert atoms.get_potential_energy() == pytest.approx(4 * 0.01 * (s6 * s6 - s6), rel=1e-5)
    atoms.calc = DiffsimCalculator(energy, species={"Ar": 0})
    with pytest.raises(ValueError, match=r"no index for atomic numbers \[36\]"):
        atoms.get_potential_energy()
    with pytest.raises(TypeError, match="must be a learned model .* a diffsim.molecular energy"):
        DiffsimCalculator(md.LennardJones())
    with pytest.raises(TypeError, match="got int"):
        DiffsimCalculator(3)
