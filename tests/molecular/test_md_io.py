"""Structures and trajectories round-trip through ASE's extxyz and xyz."""

import jax.numpy as jnp
import numpy as np
import pytest

import diffsim.molecular as md


def test_extxyz_round_trip(tmp_path):
    r, box = md.lattice(32, 0.9)
    v = jnp.ones_like(r) * 0.1
    f = jnp.arange(96.0).reshape(32, 3)
    path = tmp_path / "one.extxyz"
    md.write_structure(path, r, np.full(32, 29), box, velocities=v, energy=-1.5, forces=f)
    s = md.read_structure(path)
    np.testing.assert_allclose(s.positions, r, atol=1e-10)
    assert isinstance(s.space, md.PeriodicBox)
    np.testing.assert_allclose(s.space.lengths, box.lengths, atol=1e-10)
    np.testing.assert_allclose(s.velocities, v, atol=1e-8)
    np.testing.assert_allclose(s.forces, f)
    assert float(s.energy) == -1.5 and s.elements == (29,)
    assert np.all(np.asarray(s.species) == 0)


def test_trajectory_round_trip_and_spaces(tmp_path):
    traj = jnp.asarray(np.random.default_rng(0).normal(size=(4, 5, 3)))
    path = tmp_path / "t.xyz"
    md.write_trajectory(path, traj, np.array([1, 8, 8, 1, 6]), energies=np.arange(4.0))
    back, first = md.read_trajectory(path)
    np.testing.assert_allclose(back, traj, atol=1e-8)
    assert isinstance(first.space, md.FreeSpace) and first.elements == (1, 6, 8)
    np.testing.assert_array_equal(first.species, [0, 2, 2, 0, 1])
    cell = jnp.array([[5.0, 0, 0], [1.0, 5.0, 0], [0, 0, 6.0]])
    atoms = md.to_atoms(traj[0], space=md.TriclinicBox(cell))
    assert isinstance(md.space_from_atoms(atoms), md.TriclinicBox)
    atoms.pbc = [True, False, True]
    with pytest.raises(ValueError, match="mixed periodic"):
        md.space_from_atoms(atoms)
    with pytest.raises(ValueError, match="numbers has shape"):
        md.to_atoms(traj[0], np.ones(3))
