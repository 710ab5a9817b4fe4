"""EMT: equal to ASE's EMT (energy, forces, stress; periodic with images, neighbour
list, triclinic alloy, free cluster), stress = strain finite differences, parameter and
position gradients against finite differences, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT as AseEMT
from ase.cluster import Icosahedron
from jax.test_util import check_grads

import diffsim.molecular as md


def compare(atoms, use_list=False):
    atoms.calc = AseEMT()
    periodic = atoms.pbc.all()
    space = md.TriclinicBox(jnp.asarray(atoms.cell[:])) if periodic else md.FreeSpace()
    emt = md.EMT(atoms.numbers.tolist(), space)
    r = jnp.asarray(atoms.positions)
    nbrs = md.neighbor_list(r, space, emt.cutoff_radius, skin=0.3) if use_list else None
    e, g = jax.jit(jax.value_and_grad(emt))(r, nbrs)
    assert abs(float(e) - atoms.get_potential_energy()) < 1e-10
    np.testing.assert_allclose(-np.asarray(g), atoms.get_forces(), rtol=0, atol=1e-10)
    if periodic:
        s = md.stress(emt, r, space, nbrs)
        np.testing.assert_allclose(s, atoms.get_stress(voigt=False), rtol=0, atol=1e-10)
    return emt, space, r


def test_periodic_copper_with_images_and_alloy():
    a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)  # 7.2 A: images within the cutoff
    a.rattle(0.05, seed=1)
    compare(a)
    a = bulk("Cu", "fcc", a=3.7, cubic=True).repeat(2)
    a.numbers[::3], a.numbers[1::5] = 79, 28
    strain = np.array([[1.0, 0.04, 0.0], [0.02, 1.0, 0.03], [0.0, 0.0, 0.98]])
    a.set_cell(a.cell[:] @ strain, scale_atoms=True)
    a.rattle(0.1, seed=2)
    compare(a)


@pytest.mark.slow  # ASE's own EMT takes seconds on 256 atoms under load
def test_neighbor_list_path_256_atoms():
    a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)
    a.rattle(0.05, seed=4)
    compare(a, use_list=True)


@pytest.mark.slow  # ~10 s at load 2; the default tier keeps the ASE comparison
def test_free_cluster_and_isolated_atom():
    c = Icosahedron("Cu", 2)
    c.numbers[::4] = 46
    c.rattle(0.05, seed=3)
    emt, _, r = compare(c)
    # An atom beyond the cutoff of all others adds -E0 (no E_c; energies are relative to
    # the perfect crystal), as in ASE; its gradient is finite (zero), not NaN.
    far = jnp.concatenate([r, jnp.array([[40.0, 0.0, 0.0]])])
    lone = md.EMT(c.numbers.tolist() + [29], md.FreeSpace())
    assert abs(float(lone(far)) - float(emt(r)) - 3.51) < 1e-12
    g = np.asarray(jax.grad(lone)(far))
    assert np.all(np.isfinite(g)) and np.all(g[-1] == 0)


@pytest.mark.slow  # ~10 s at load 2; the default tier keeps the ASE comparison
def test_stress_equals_strain_finite_differences():
    a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    a.rattle(0.05, seed=5)
    box = md.TriclinicBox(jnp.asarray(a.cell[:]))
    emt = md.EMT(a.numbers.tolist(), box)
    r = jnp.asarray(a.positions)
    s = np.asarray(md.stress(emt, r, box))
    strained = jax.jit(lambda F: emt(r @ F.T, space=box.deform(F)))
    h = 1e-5
    fd = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            e = np.zeros((3, 3))
            e[i, j] = e[j, i] = h / (1 if i == j else 2)
            up = strained(jnp.eye(3) + e)
            dn = strained(jnp.eye(3) - e)
            fd[i, j] = float(up - dn) / (2 * h) / float(box.volume())
    np.testing.assert_allclose(s, fd, rtol=0, atol=1e-8)


@pytest.mark.slow  # ~10 s at load 2; the default tier keeps the ASE comparison
def test_gradients_against_finite_differences():
    c = Icosahedron("Cu", 2)
    c.rattle(0.05, seed=6)
    emt = md.EMT(c.numbers.tolist(), md.FreeSpace())
    r = jnp.asarray(c.positions)
    check_grads(jax.jit(lambda x: emt(x)), (r,), order=2, modes=["rev"], eps=1e-5)
    by_params = jax.jit(lambda p: emt(r, params=p))
    check_grads(by_params, (emt.params,), order=1, modes=["rev"], eps=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="no parameters"):
        md.EMT(["Fe"], md.FreeSpace())
    emt = md.EMT(["Cu", "Cu"], md.FreeSpace())
    with pytest.raises(ValueError, match="3 atoms"):
        emt(jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="unknown parameters"):
        emt(jnp.eye(2, 3), sigma=1.0)
