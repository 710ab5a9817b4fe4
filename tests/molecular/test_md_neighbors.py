"""Neighbour lists: same energies as the dense path, rebuild only past half the skin,
overflow caught (never silently wrong), bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim.molecular as md


def fluid(n, density=0.8, noise=0.1, seed=0):
    r, box = md.lattice(n, density)
    rng = np.random.default_rng(seed)
    return r + jnp.asarray(rng.normal(scale=noise, size=r.shape)), box


@jax.jit
def _moved(r, key):
    return r + 0.05 * jax.random.normal(key, r.shape, r.dtype)


def energies(energy, r, nbrs):
    f = jax.jit(lambda r, n: (energy(r, n), energy(r)))
    return f(r, nbrs)


@pytest.mark.parametrize("dense", [False, True], ids=["cell_list", "all_pairs_build"])
def test_neighbor_energy_equals_dense(dense):
    r, box = fluid(500)
    energy = md.lennard_jones(box)
    nbrs = md.neighbor_list(r, box, energy.cutoff_radius, skin=0.3, dense=dense)
    assert (nbrs.grid is None) == dense
    e_nl, e_dense = energies(energy, r, nbrs)
    np.testing.assert_allclose(e_nl, e_dense, rtol=1e-12)
    # Every pair within cutoff + skin is listed exactly once.
    pairs = np.asarray(nbrs.pairs)[: int(nbrs.count)]
    assert int(nbrs.count) <= nbrs.capacity
    key = np.sort(pairs, axis=1)
    assert len(np.unique(key[:, 0] * 500 + key[:, 1])) == len(pairs)
    d = np.asarray(box.distance(r[:, None, :], r[None, :, :]))
    expected = np.sum(np.triu(d < 2.8, k=1))
    assert len(pairs) == expected


def test_update_rebuilds_only_past_half_skin(getkey):
    r, box = fluid(500)
    energy = md.lennard_jones(box)
    nbrs = md.neighbor_list(r, box, energy.cutoff_radius, skin=0.4)
    update = eqx.filter_jit(lambda n, r: n.update(r))
    small = r + 0.09 * jnp.ones_like(r) / jnp.sqrt(3.0)  # every atom moves 0.09 < 0.2
    same = update(nbrs, small)
    assert int(same.rebuilds) == int(nbrs.rebuilds)
    e_nl, e_dense = energies(energy, small, same)
    np.testing.assert_allclose(e_nl, e_dense, rtol=1e-12)
    far = r.at[7].add(jnp.array([0.25, 0.0, 0.0]))  # one atom past skin / 2
    moved = update(nbrs, far)
    assert int(moved.rebuilds) == int(nbrs.rebuilds) + 1
    # A random walk: the list stays exact through many updates.
    for _ in range(5):
        r = _moved(r, getkey())
        nbrs = update(nbrs, r)
        e_nl, e_dense = energies(energy, r, nbrs)
        np.testing.assert_allclose(e_nl, e_dense, rtol=1e-12)
    assert not bool(nbrs.overflow)


def test_overflow_is_caught_on_compression():
    r, box = fluid(500)
    energy = md.lennard_jones(box)
    nbrs = md.neighbor_list(r, box, energy.cutoff_radius, skin=0.3)
    # Squeeze the atoms into 70% of the box: many more pairs than the buffers hold.
    squeezed = r * 0.7
    over = eqx.filter_jit(lambda n, r: n.update(r))(nbrs, squeezed)
    assert bool(over.overflow)
    assert int(over.count) > over.capacity or int(over.max_occupancy) > over.cell_capacity
    with pytest.raises(Exception, match="neighbour list overflowed"):
        jax.block_until_ready(jax.jit(lambda r, n: energy(r, n))(squeezed, over))
    fixed = md.update_neighbors(nbrs, squeezed)
    assert not bool(fixed.overflow) and fixed.capacity > nbrs.capacity
    e_nl, e_dense = energies(energy, squeezed, fixed)
    np.testing.assert_allclose(e_nl, e_dense, rtol=1e-12)


def test_simulate_redoes_chunk_after_overflow():
    # A gas collapsing towards the centre of its box overflows the list mid-run.
    r, box = fluid(108, density=0.3, noise=0.0)
    centre = box.lengths[None, :] / 2
    v = -0.8 * (r - centre)
    energy = md.soft_sphere(box, sigma=1.0, epsilon=1.0)
    vv = md.NVE(energy, dt=0.01)
    nbrs = md.neighbor_list(r, box, energy.cutoff_radius, skin=0.3, capacity_factor=1.0)
    cap0 = nbrs.capacity
    s, out = md.simulate(vv, vv.init(r, v, nbrs), 100, chunk=50)
    assert s.neighbors.capacity > cap0 and not bool(s.neighbors.overflow)
    # The reference runs the dense path: no list at all.
    ref, out_ref = md.simulate(vv, vv.init(r, v), 100, chunk=100)
    np.testing.assert_allclose(s.positions, ref.positions, atol=1e-9)
    np.testing.assert_allclose(out["potential"], out_ref["potential"], rtol=1e-9, atol=1e-9)


def test_bad_input(unchecked):
    r, box = fluid(108)
    with pytest.raises(ValueError, match="positions have 2 coordinates but the box has 3"):
        md.neighbor_list(r[:, :2], box, 2.0)
    with pytest.raises(ValueError, match=r"2 \* \(cutoff \+ skin\)"):
        md.neighbor_list(r, box, 2.5, skin=0.3)
    r5, box5 = fluid(500)
    with pytest.raises(ValueError, match="NaN"):
        md.neighbor_list(r5.at[0, 0].set(jnp.nan), box5, 2.5)
    with pytest.raises(ValueError, match="skin must be"):
        md.neighbor_list(r5, box5, 2.5, skin=-0.1)
    nbrs = md.neighbor_list(r5, box5, 2.0, skin=0.3)
    with pytest.raises(ValueError, match="shorter than the potential's cutoff"):
        md.lennard_jones(box5)(r5, nbrs)
    with pytest.raises(ValueError, match="built for 500 atoms"):
        md.lennard_jones(box5)(r5[:400], nbrs)
