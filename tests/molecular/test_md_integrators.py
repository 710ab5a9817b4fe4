"""Integrators: NVE energy conservation, exact inverse, Langevin temperature, gradients
through trajectories (BPTT = reversible = finite differences), bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim
import diffsim.molecular as md


def drift_and_spread(outs):
    """Relative drift |<E>_last 10% - <E>_first 10%| / |<E>| and max |E - <E>| / |<E>|."""
    tot = np.asarray(outs["potential"] + outs["kinetic"], np.float64)
    k = max(len(tot) // 10, 1)
    mean = abs(tot.mean())
    return abs(tot[-k:].mean() - tot[:k].mean()) / mean, np.max(np.abs(tot - tot.mean())) / mean


def nve_run(n, steps, dtype, cutoff, *, settle=100, equilibrate=0, chunk=1000):
    r, box = md.lattice(n, 0.8, dtype=dtype)
    energy = md.lennard_jones(box, cutoff=cutoff)
    v = md.random_velocities(n, 3, 1.0, key=jax.random.key(0), dtype=dtype)
    nbrs = md.neighbor_list(r, box, 2.5, skin=0.3) if n >= 500 else None
    state = md.NVE(energy, dt=0.005).init(r, v, nbrs)
    if equilibrate:
        # Thermalise at T* = 1 first, so the NVE run is at the target temperature.
        lang = md.Langevin(energy, dt=0.005, kT=1.0, gamma=1.0)
        state, _ = md.simulate(lang, state, equilibrate, key=jax.random.key(1), chunk=chunk)
    vv = md.NVE(energy, dt=0.005)
    state, _ = md.simulate(vv, state, settle, chunk=settle)
    state, outs = md.simulate(vv, state, steps, chunk=chunk)
    return state, outs


@pytest.mark.parametrize(
    "dtype",
    [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.slow)],
    ids=["f32", "f64"],
)
def test_nve_energy_conservation_short(dtype):
    # N = 108 (dense path), smooth cutoff, dt = 0.005, 100 settling + 1,000 steps.
    # Measured (float32 / float64): drift 2.6e-6 / 2.2e-6, spread 5.5e-5 / 7.9e-5; the
    # spread is the O(dt^2) shadow-energy oscillation of velocity Verlet, the drift its
    # trend. Bounds: drift 2e-5 (8x margin), spread 2e-4 (2.5x margin).
    state, outs = nve_run(108, 1000, dtype, md.Switched(2.0, 2.5), chunk=1000)
    assert outs["potential"].dtype == dtype
    drift, spread = drift_and_spread(outs)
    assert drift < 2e-5, drift
    assert spread < 2e-4, spread
    # Zero net momentum is conserved.
    np.testing.assert_allclose(
        state.velocities.sum(0), 0.0, atol=1e-3 if dtype == jnp.float32 else 1e-10
    )


@pytest.mark.slow
def test_nve_energy_drift_lj_fluid_500():
    # The claim: N = 500, density 0.8, T* = 1.0 (Langevin-equilibrated first),
    # dt = 0.005, 10,000 steps after 100 settling, smooth cutoff, neighbour lists;
    # relative drift < 1e-4 in float32 and float64; the shifted cutoff, bounded beside.
    results = {}
    for dtype in (jnp.float32, jnp.float64):
        for name, cut in [("switched", md.Switched(2.0, 2.5)), ("shifted", md.Shifted(2.5))]:
            state, outs = nve_run(500, 10_000, dtype, cut, equilibrate=2000)
            results[(dtype.__name__, name)] = drift_and_spread(outs)
            t = float(md.temperature(state.velocities))
            drift, spread = results[(dtype.__name__, name)]
            print(f"{dtype.__name__} {name} drift {drift:.3g} spread {spread:.3g} T {t:.3f}")
    # The claim is the drift (the trend). The spread, max |E - <E>| / |<E>|, is velocity
    # Verlet's bounded O(dt^2) oscillation: measured 1.5e-4 at T* = 1, not a drift;
    # bounded here at 1e-3 as a sanity check only.
    # "Better in float64" is not resolvable with this measure: at dt = 0.005 both drifts
    # (measured 1.9e-6 f32, 4.1e-6 f64) sit at the noise floor the O(dt^2) oscillation
    # leaves on the two window means (~1e-5), far above round-off; both are bounded.
    # Measured (drift / spread): switched f32 4.2e-6 / 1.4e-4, f64 4.4e-6 / 1.5e-4;
    # shifted f32 3.2e-5 / 1.5e-4, f64 1.8e-5 / 1.8e-4. The shifted cutoff's force jumps at
    # rc, so its drift is larger; bounded at 2e-4 (6x the larger measurement).
    for dtype in ("float32", "float64"):
        assert results[(dtype, "switched")][0] < 1e-4, results
        assert results[(dtype, "shifted")][0] < 2e-4, results
        for cut in ("switched", "shifted"):
            assert results[(dtype, cut)][1] < 1e-3, results


def test_nve_inverse_is_exact():
    r, box = md.lattice(108, 0.8)
    vv = md.NVE(md.lennard_jones(box), dt=0.005)
    v = md.random_velocities(108, 3, 1.0, key=jax.random.key(0))
    s0 = vv.init(r, v)
    fwd = jax.jit(lambda s: diffsim.rollout(vv.step, s, length=50)[0])
    s1 = fwd(s0)
    back = jax.jit(lambda s: jax.lax.fori_loop(0, 50, lambda i, s: vv.inverse(s), s))(s1)
    assert float(jnp.max(jnp.abs(s1.positions - s0.positions))) > 0.05
    np.testing.assert_allclose(back.positions, s0.positions, atol=1e-11)
    np.testing.assert_allclose(back.velocities, s0.velocities, atol=1e-10)


def test_langevin_temperature_converges():
    r, box = md.lattice(108, 0.8)
    energy = md.lennard_jones(box)
    lang = md.Langevin(energy, dt=0.005, kT=1.5, gamma=5.0)
    state = lang.init(r)
    state, _ = md.simulate(lang, state, 1000, key=jax.random.key(0), chunk=1000)
    _, outs = md.simulate(lang, state, 4000, key=jax.random.key(1), chunk=1000)
    t = 2 * np.mean(np.asarray(outs["kinetic"])) / (108 * 3)
    # Standard error of the mean: about 0.3% (gamma = 5 decorrelates T in ~20 steps).
    assert abs(t - 1.5) / 1.5 < 0.02, t


def _small_crystal(dtype=jnp.float64):
    r, box = md.lattice(32, 1.0, dtype=dtype)
    v = md.random_velocities(32, 3, 0.1, key=jax.random.key(3), dtype=dtype)
    return r, box, v


def _trajectory_loss(sigma, r, box, v, steps, grad):
    if box is None:  # free cluster, bare LJ: smooth in sigma for finite differences
        energy = md.lennard_jones(md.FreeSpace(), sigma=sigma, cutoff=md.NoCutoff())
    else:
        energy = md.lennard_jones(box, sigma=sigma, cutoff=md.Switched(1.2, 1.5))
    vv = md.NVE(energy, dt=0.005)
    s0 = vv.init(r, v)
    grad = diffsim.Reversible(vv.inverse) if grad == "reversible" else diffsim.BPTT()
    final, outs = diffsim.rollout(vv.step, s0, length=steps, grad=grad)
    return jnp.mean(outs["potential"]) + jnp.sum(final.positions[:4] ** 2) / 100


def test_trajectory_gradient_bptt_equals_reversible():
    # d(loss)/d(sigma) through 1,000 velocity-Verlet steps.
    r, box, v = _small_crystal()
    g = {
        mode: jax.jit(jax.grad(lambda s, m=mode: _trajectory_loss(s, r, box, v, 1000, m)))(1.0)
        for mode in ("bptt", "reversible")
    }
    assert abs(float(g["bptt"])) > 1e-3
    np.testing.assert_allclose(g["reversible"], g["bptt"], rtol=1e-8)


def test_trajectory_gradient_finite_differences():
    # The switched cutoff makes forces only C^0 in positions, so finite differences
    # straddle kinks; a free cluster with the bare potential is smooth.
    r, _, v = _small_crystal()
    loss = jax.jit(lambda s: _trajectory_loss(s, r, None, v, 200, "reversible"))
    g = jax.jit(jax.grad(lambda s: _trajectory_loss(s, r, None, v, 200, "reversible")))(1.0)
    h = 1e-5
    np.testing.assert_allclose(g, (loss(1.0 + h) - loss(1.0 - h)) / (2 * h), rtol=1e-6)


@pytest.mark.slow
def test_simulate_gradient_through_neighbor_list():
    # Chunked simulate with a neighbour list, differentiated outside jit, reversible mode.
    r, box = md.lattice(256, 0.8)
    v = md.random_velocities(256, 3, 1.0, key=jax.random.key(0))
    nbrs = md.neighbor_list(r, box, 2.5, skin=0.3)

    def loss(eps, grad_mode):
        vv = md.NVE(md.lennard_jones(box, epsilon=eps), dt=0.005)
        grad = diffsim.Reversible(vv.inverse) if grad_mode else diffsim.BPTT()
        s, outs = md.simulate(vv, vv.init(r, v, nbrs), 40, chunk=20, grad=grad)
        return jnp.mean(outs["potential"])

    g_rev = jax.grad(loss)(1.0, True)
    g_bptt = jax.grad(loss)(1.0, False)
    np.testing.assert_allclose(g_rev, g_bptt, rtol=1e-9)


def test_bad_input(unchecked):
    r, box = md.lattice(108, 0.8)
    energy = md.lennard_jones(box)
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        md.NVE(energy, dt=0.0)
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        md.Langevin(energy, dt=-0.01, kT=1.0)
    with pytest.raises(ValueError, match="kT must be finite and >= 0"):
        md.Langevin(energy, dt=0.01, kT=-1.0)
    vv = md.NVE(energy, dt=0.005)
    with pytest.raises(ValueError, match="velocities has shape"):
        vv.init(r, jnp.zeros((10, 3)))
    with pytest.raises(ValueError, match="NaN"):
        vv.init(r.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="overlapping atoms"):
        vv.init(r.at[3].set(r[2] + 0.01))
    with pytest.raises(ValueError, match="needs key"):
        lang = md.Langevin(energy, dt=0.005, kT=1.0)
        md.simulate(lang, lang.init(r), 10)
    # A state going NaN mid-run (as a blow-up does): simulate names the steps.
    v = md.random_velocities(108, 3, 1.0, key=jax.random.key(0)).at[5, 1].set(jnp.nan)
    with pytest.raises(
        ValueError, match=r"NaN or inf in the state or the energies in chunk 1 \(steps 0\.\.20\)"
    ):
        md.simulate(vv, vv.init(r, v), 20, chunk=20)


def test_observables_rdf_msd():
    r, box = md.lattice(500, 0.8)
    a = float(box.lengths[0]) / 5  # FCC cube edge: nearest neighbours at a / sqrt(2)
    centres, g = md.rdf(r, box, r_max=2.0, bins=200)
    assert abs(float(centres[jnp.argmax(g)]) - a / np.sqrt(2)) < 0.02
    # An ideal gas has g(r) = 1 (averaged over bins away from r = 0).
    gas = jax.random.uniform(jax.random.key(0), (1000, 3)) * box.lengths[None, :]
    _, g_gas = md.rdf(gas, box, r_max=4.0, bins=20)
    np.testing.assert_allclose(np.mean(np.asarray(g_gas[5:])), 1.0, atol=0.03)
    # Smeared g(r) is differentiable and integrates to the same counts.
    _, g_s = md.rdf(r, box, r_max=4.0, bins=80, width=0.05)
    _, g_h = md.rdf(r, box, r_max=4.0, bins=80)
    assert bool(
        jnp.all(
            jnp.isfinite(
                jax.grad(lambda x: md.rdf(x, box, r_max=4.0, bins=80, width=0.05)[1].sum())(r)
            )
        )
    )
    shell = 4 * np.pi * np.linspace(0.025, 3.975, 80) ** 2
    np.testing.assert_allclose(
        np.sum(g_s[:60] * shell[:60]), np.sum(g_h[:60] * shell[:60]), rtol=0.02
    )
    # Ballistic motion: MSD = |v|^2 t^2.
    v = md.random_velocities(500, 3, 1.0, key=jax.random.key(1))
    t = jnp.arange(5.0)
    traj = r[None] + t[:, None, None] * v[None]
    np.testing.assert_allclose(md.msd(traj), jnp.mean(jnp.sum(v * v, -1)) * t**2, rtol=1e-12)
    np.testing.assert_allclose(md.temperature(v), 1.0, rtol=1e-12)


def test_simulate_refuses_a_blown_up_system_naming_the_chunk():
    # float32, as in the report: positions reach ~1e26 and the kinetic energy overflows.
    r, box = md.lattice(108, 0.8, dtype=jnp.float32)
    integrator = md.NVE(md.lennard_jones(box), dt=10.0)
    state = integrator.init(r, jnp.zeros_like(r))
    with pytest.raises(ValueError, match=r"in chunk \d+ \(steps \d+\.\.\d+\)"):
        md.simulate(integrator, state, 50, chunk=10)
