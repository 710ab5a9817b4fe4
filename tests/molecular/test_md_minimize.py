"""Minimisers: LJ13 global minimum (FIRE, L-BFGS), copper relaxation equal to ASE's,
neighbour lists (overflow reallocated), gradients through FIRE steps, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import diffsim
import diffsim.molecular as md

LJ13 = -44.326801  # Wales and Doye 1997, rounded to 6 decimals


def icosahedron(r_nn=1.1):
    g = (1 + 5**0.5) / 2
    v = []
    for a in (-1.0, 1.0):
        for b in (-g, g):
            v += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    v = np.asarray(v)
    return np.vstack([np.zeros(3), v / np.linalg.norm(v[0]) * r_nn])


def perturbed_lj13(seed=0, scale=0.08):
    return jnp.asarray(icosahedron() + scale * np.random.default_rng(seed).normal(size=(13, 3)))


ENERGY = md.lennard_jones(md.FreeSpace(), cutoff=md.NoCutoff())


@pytest.mark.parametrize(
    "minimizer",
    [
        md.FIRE(ENERGY, dt_start=0.005, dt_max=0.02),
        pytest.param(
            md.LBFGS(ENERGY), marks=pytest.mark.slow
        ),  # optax's line search compiles slowly
    ],
    ids=["fire", "lbfgs"],
)
def test_lj13_global_minimum(minimizer):
    res = md.minimize(minimizer, perturbed_lj13(), fmax=1e-7, max_steps=3000)
    assert res.converged and res.fmax <= 1e-7
    assert abs(float(res.energy) - LJ13) < 5e-7  # the published value's rounding
    assert len(res.energies) == res.steps
    # Energies fall overall (FIRE may rise briefly; L-BFGS's line search never does).
    assert float(res.energies[-1]) < float(ENERGY(perturbed_lj13()))


@pytest.mark.slow  # ~10 s at load 2
def test_copper_relaxation_equals_ase():
    from ase.build import bulk
    from ase.calculators.emt import EMT as AseEMT
    from ase.optimize import BFGS

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    del atoms[0]  # a vacancy, so the relaxation is not trivial
    atoms.rattle(0.05, seed=3)
    start = atoms.positions.copy()
    box = md.TriclinicBox(jnp.asarray(atoms.cell[:]))
    emt = md.EMT(atoms.numbers.tolist(), box)
    fire = md.FIRE(emt, dt_start=1.0, dt_max=4.0, mass=63.5)  # ASE time units (10 fs)
    res = md.minimize(fire, jnp.asarray(start), fmax=1e-5)
    atoms.calc = AseEMT()
    BFGS(atoms, logfile=None).run(fmax=1e-5)
    assert res.converged
    assert abs(float(res.energy) - atoms.get_potential_energy()) < 1e-8
    # Periodic: equal up to a rigid translation.
    d = np.asarray(res.positions) - atoms.positions
    d -= d.mean(axis=0)
    assert np.max(np.abs(d)) < 1e-4
    assert np.max(np.abs(start - atoms.positions)) > 0.05  # it did move


@pytest.mark.slow  # ~10 s at load 2
def test_neighbor_list_and_overflow_reallocation():
    r, box = md.lattice(108, 0.9)
    r = r + 0.05 * jax.random.normal(jax.random.key(0), r.shape)
    energy = md.lennard_jones(box, cutoff=md.Switched(1.3, 1.6))
    dense = md.minimize(md.FIRE(energy, dt_start=0.005, dt_max=0.02), r, fmax=1e-6)
    nbrs = md.neighbor_list(r, box, 1.6, skin=0.2)
    # A list flagged as overflowed must be reallocated, never used.
    bad = eqx.tree_at(lambda l: l.overflow, nbrs, jnp.asarray(True))
    listed = md.minimize(md.FIRE(energy, dt_start=0.005, dt_max=0.02), r, bad, fmax=1e-6)
    assert dense.converged and listed.converged
    assert not bool(listed.neighbors.overflow)
    assert abs(float(dense.energy) - float(listed.energy)) < 1e-9
    np.testing.assert_allclose(listed.positions, dense.positions, atol=1e-6)


@pytest.mark.slow  # ~10 s at load 2
def test_gradient_through_fire_steps_matches_finite_differences():
    r0 = perturbed_lj13(1)

    @jax.jit
    def relaxed_energy(sigma):
        energy = md.lennard_jones(md.FreeSpace(), sigma=sigma, cutoff=md.NoCutoff())
        fire = md.FIRE(energy, dt_start=0.005, dt_max=0.02)
        state, _ = diffsim.rollout(fire.step, fire.init(r0), length=10)
        return state.energy

    check_grads(relaxed_energy, (jnp.asarray(1.02),), order=1, modes=["rev"], eps=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="fmax"):
        md.minimize(md.FIRE(ENERGY), perturbed_lj13(), fmax=0.0)
    with pytest.raises(ValueError, match="NaN"):
        md.minimize(md.FIRE(ENERGY), perturbed_lj13().at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="dt_start"):
        md.FIRE(ENERGY, dt_start=-1.0)
    with pytest.raises(ValueError, match="memory_size"):
        md.LBFGS(ENERGY, memory_size=0)
