"""simulate's per-chunk host work: the checks run on the device, one read per chunk."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim
import diffsim.molecular as md


def _fluid(n=108, dtype=jnp.float32):
    r, box = md.lattice(n, 0.8, dtype=dtype)
    v = md.random_velocities(n, 3, 1.0, key=jax.random.key(0), dtype=dtype)
    energy = md.lennard_jones(box, cutoff=md.Switched(2.0, 2.5))
    return r, v, box, energy


def test_simulate_reads_one_status_per_chunk(monkeypatch):
    r, v, box, energy = _fluid(256)
    nve = md.NVE(energy, dt=0.005)
    state = nve.init(r, v, md.neighbor_list(r, box, 2.5, skin=0.5))
    reads = []
    device_get = jax.device_get
    monkeypatch.setattr(jax, "device_get", lambda x: reads.append(x) or device_get(x))
    # Every other device-to-host transfer (a bool() of a flag, a host-side isfinite) raises.
    with jax.transfer_guard_device_to_host("disallow"):
        final, outs = md.simulate(nve, state, 40, chunk=10)
    assert len(reads) == 4 and all(np.shape(x) == () for x in reads)
    assert outs["potential"].shape == (40,) and outs["kinetic"].shape == (40,)
    assert bool(jnp.all(jnp.isfinite(final.positions)))


@pytest.mark.slow
def test_simulate_draws_each_chunks_noise_from_the_key_as_before():
    # The chunk's keys are split on the device now; the stream is the one documented:
    # per chunk `key, sub = split(key)`, then one key per step from `split(sub, n)`.
    r, _ = md.lattice(32, 0.8, dtype=jnp.float32)  # a free cluster
    v = md.random_velocities(32, 3, 1.0, key=jax.random.key(0), dtype=jnp.float32)
    langevin = md.Langevin(md.lennard_jones(md.FreeSpace()), dt=0.005, kT=1.0)
    state = langevin.init(r, v)
    key = jax.random.key(3)
    final, outs = md.simulate(langevin, state, 12, key=key, chunk=5)
    s, pot = state, []
    for n in (5, 5, 2):
        key, sub = jax.random.split(key)
        s, out = diffsim.rollout(langevin.step, s, jax.random.split(sub, n))
        pot.append(out["potential"])
    np.testing.assert_allclose(final.positions, s.positions, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(outs["potential"], jnp.concatenate(pot), rtol=1e-5)
