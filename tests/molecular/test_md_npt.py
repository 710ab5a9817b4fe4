"""NPT: the deterministic MTK limit conserves its extended energy, the neighbour-list
path equals the dense path (strain-aware rebuilds; an overflowed list is restarted),
gradients through the trajectory against finite differences, the tail correction's
pressure, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import diffsim
import diffsim.molecular as md


def small_fluid(n=32, rho=0.7, rc=1.6):
    r, box = md.lattice(n, rho)
    energy = md.lennard_jones(box, cutoff=md.Switched(rc - 0.3, rc))
    v = md.random_velocities(n, 3, 1.5, key=jax.random.key(0))
    return r, box, energy, v


@pytest.mark.slow  # compiles a trajectory; ~10-20 s at load 2
def test_mtk_limit_conserves_extended_energy_to_second_order():
    r, box, energy, v = small_fluid()
    P, W = 2.0, (32 * 3 + 3) * 1.5 * 0.5**2
    errors = []
    for dt in (0.002, 0.001):
        npt = md.NPT(energy, dt=dt, kT=1.5, pressure=P, gamma=0.0, barostat_gamma=0.0,
                     barostat_time=0.5)  # fmt: skip
        state = npt.init(r, box, v, barostat_momentum=3.0)
        h0 = state.potential_energy + 0.5 * jnp.sum(v * v) + P * box.volume() + 9.0 / (2 * W)
        keys = jax.random.split(jax.random.key(1), int(round(0.5 / dt)))
        final, outs = diffsim.rollout(npt.step, state, keys)
        vols = outs["volume"]
        assert float(jnp.max(vols) - jnp.min(vols)) > 0.1 * float(box.volume())  # it moved
        h1 = final.potential_energy + outs["kinetic"][-1] + P * vols[-1]
        errors.append(abs(float(h1 + final.barostat_momentum**2 / (2 * W) - h0)))
    assert errors[0] < 2e-3 * 21.5
    assert errors[0] / errors[1] > 3.0  # second order: the extended energy is the invariant


@pytest.mark.slow  # compiles a trajectory; ~10-20 s at load 2
def test_neighbor_list_equals_dense_and_overflow_restarts():
    r, box = md.lattice(108, 0.75)
    energy = md.lennard_jones(box, cutoff=md.Shifted(2.0))
    v = md.random_velocities(108, 3, 2.0, key=jax.random.key(0))
    npt = md.NPT(energy, dt=0.004, kT=2.0, pressure=1.0, barostat_time=0.3)
    dense, out_d = md.simulate(npt, npt.init(r, box, v), 100, key=jax.random.key(2), chunk=100)
    nbrs = md.neighbor_list(r, box, 2.0, skin=0.3)
    bad = eqx.tree_at(lambda l: l.overflow, nbrs, jnp.asarray(True))
    listed, out_l = md.simulate(
        npt, npt.init(r, box, v, bad), 100, key=jax.random.key(2), chunk=100
    )
    assert not bool(listed.neighbors.overflow)
    assert int(listed.neighbors.rebuilds) > 1
    assert abs(float(out_d["volume"][-1]) / float(box.volume()) - 1) > 0.005  # it moved
    np.testing.assert_allclose(out_l["volume"], out_d["volume"], rtol=1e-9)
    np.testing.assert_allclose(listed.positions, dense.positions, atol=1e-8)


@pytest.mark.slow  # compiles a trajectory; ~10-20 s at load 2
def test_gradient_through_trajectory_matches_finite_differences():
    r, box, energy, v = small_fluid()
    keys = jax.random.split(jax.random.key(3), 15)

    @jax.jit
    def final_volume(pressure):
        npt = md.NPT(energy, dt=0.004, kT=1.5, pressure=pressure, barostat_time=0.3)
        _, outs = diffsim.rollout(npt.step, npt.init(r, box, v), keys)
        return outs["volume"][-1]

    check_grads(final_volume, (jnp.asarray(2.0),), order=1, modes=["rev"], eps=1e-5)
    assert float(jax.grad(final_volume)(jnp.asarray(2.0))) < 0  # more pressure, less volume


def test_tail_correction_pressure():
    n, rc = 108, 2.5
    r, box = md.lattice(n, 0.8)
    tail = md.LennardJonesTail(n, box, rc)
    rho = n / float(box.volume())
    e_tail = 8.0 / 3.0 * np.pi * n * rho * (rc**-9 / 3.0 - rc**-3)
    assert abs(float(tail(r)) - e_tail) < 1e-12
    # -dE_tail/dV: the usual virial tail minus the impulsive term of the truncation at rc
    # (the pressure of the truncated-potential ensemble the tail energy corrects).
    p_tail = 16.0 / 3.0 * np.pi * rho**2 * (2.0 / 3.0 * rc**-9 - rc**-3)
    p_imp = 2.0 / 3.0 * np.pi * rho**2 * rc**3 * 4.0 * (rc**-12 - rc**-6)
    assert abs(float(md.pressure(tail, r, box)) - (p_tail - p_imp)) < 1e-12


def test_bad_input():
    r, box, energy, v = small_fluid()
    with pytest.raises(ValueError, match="kT"):
        md.NPT(energy, dt=0.004, kT=0.0, pressure=1.0)
    npt = md.NPT(energy, dt=0.004, kT=1.0, pressure=1.0)
    with pytest.raises(ValueError, match="periodic"):
        npt.init(r, md.FreeSpace())
    with pytest.raises(ValueError, match="needs key"):
        md.simulate(npt, npt.init(r, box, v), 10)
