"""Learned energy models: symmetries, forces, cutoff smoothness, separability, paths."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from jax.test_util import check_grads

import diffsim
import diffsim.molecular as md
import diffsim.potentials as pot

MODELS = {"schnet": pot.SchNet, "painn": pot.PaiNN}
ELEMENTS = (1, 6, 8)


def tiny(name, dtype=jnp.float64, cutoff=4.0, seed=0, elements=ELEMENTS):
    m = MODELS[name](
        elements, cutoff=cutoff, features=8, layers=2, n_rbf=6, key=jax.random.key(seed)
    )
    # A non-trivial scale and reference energies, as after fit_energy_scale.
    m = m.with_reference(jnp.arange(1.0, len(elements) + 1.0), 0.7)
    return pot.astype(m, dtype)


def molecule(seed, n=9, dtype=np.float64):
    """A random non-overlapping cluster of n atoms within a 3 A ball, and species."""
    rng = np.random.default_rng(seed)
    pts = []
    while len(pts) < n:
        p = rng.uniform(-1.8, 1.8, 3)
        if all(np.linalg.norm(p - q) > 0.9 for q in pts):
            pts.append(p)
    return np.asarray(pts, dtype), rng.integers(0, 3, n)


def orthogonal(seed, reflect):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    if reflect:
        q = q @ np.diag([1.0, 1.0, -1.0])
    return q


@eqx.filter_jit
def _value_and_grad(model, r, s, space, neighbors):
    return jax.value_and_grad(model)(r, s, neighbors, space=space)


def energy_forces(model, r, s, space=None, neighbors=None):
    e, g = _value_and_grad(model, jnp.asarray(r), jnp.asarray(s), space, neighbors)
    return float(e), np.asarray(-g)


# PaiNN in float64 runs in the slow tier (default tier under 10 min): float32 is the
# tighter case for this test (its tolerance scales with eps), and SchNet keeps float64.
@pytest.mark.parametrize(
    "name,dtype",
    [
        ("painn", np.float32),
        pytest.param("painn", np.float64, marks=pytest.mark.slow),
        ("schnet", np.float32),
        ("schnet", np.float64),
    ],
)
@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 10_000), reflect=st.booleans(), shift=st.floats(-20, 20))
def test_e3_and_permutation_symmetry(name, dtype, seed, reflect, shift):
    model = tiny(name, jnp.float64 if dtype == np.float64 else jnp.float32)
    r, s = molecule(seed, dtype=dtype)
    Q = orthogonal(seed + 1, reflect)
    perm = np.random.default_rng(seed + 2).permutation(len(s))
    e, f = energy_forces(model, r, s)
    r2 = (r @ Q.T + np.asarray([shift, -0.5 * shift, 1.0]))[perm].astype(dtype)
    e2, f2 = energy_forces(model, r2, s[perm])
    # Rounding the moved coordinates costs |r| eps in each distance: in float32 that, not
    # the model, sets the error, so the tolerance scales with the largest |r| (up to ~25 A
    # at the largest shifts). float64: a fixed 1e-10.
    extent = max(3.0, float(np.abs(r2).max()), float(np.abs(r).max()))
    tol = 1e-10 if dtype == np.float64 else 32 * float(np.finfo(np.float32).eps) * extent
    assert abs(e2 - e) <= tol * max(1.0, abs(e))
    fmax = np.max(np.abs(f))
    np.testing.assert_allclose(f2, (f @ Q.T)[perm], atol=tol * max(1.0, fmax))


# PaiNN in the slow tier (default tier under 10 min); SchNet keeps the default one.
@pytest.mark.parametrize("name", ["schnet", pytest.param("painn", marks=pytest.mark.slow)])
def test_periodic_translation_and_permutation(name):
    model = tiny(name)
    atoms_r, space = md.lattice(32, 0.05, dtype=jnp.float64)  # fcc, box 8.6 A > 2 * cutoff
    rng = np.random.default_rng(0)
    r = np.asarray(atoms_r) + rng.normal(scale=0.1, size=atoms_r.shape)
    s = rng.integers(0, 3, 32)
    e, f = energy_forces(model, r, s, space)
    perm = rng.permutation(32)
    # A translation by an arbitrary vector, then wrapping into the box, changes nothing.
    r2 = np.asarray(space.wrap(jnp.asarray(r + np.array([3.3, -7.1, 12.9]))))[perm]
    e2, f2 = energy_forces(model, r2, s[perm], space)
    assert abs(e2 - e) < 1e-10 * abs(e)
    np.testing.assert_allclose(f2, f[perm], atol=1e-10)
    assert np.max(np.abs(f.sum(0))) < 1e-10  # no net force on an isolated periodic cell
    # Rotating (and reflecting) atoms and cell together: a triclinic cell, same physics.
    Q = orthogonal(5, reflect=True)
    cell = np.diag(np.asarray(space.lengths)) @ Q.T
    e3, f3 = energy_forces(model, r @ Q.T, s, md.TriclinicBox(jnp.asarray(cell)))
    assert abs(e3 - e) < 1e-10 * abs(e)
    np.testing.assert_allclose(f3, f @ Q.T, atol=1e-10)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forces_match_finite_differences(name):
    model = tiny(name)
    r, s = molecule(3)
    energy = jax.jit(lambda x: model(x, jnp.asarray(s)))
    check_grads(energy, (jnp.asarray(r),), order=1, modes=["rev"])


# PaiNN's run (30 s) is in the slow tier; its forces are checked against finite
# differences in the default tier.
@pytest.mark.parametrize("name", ["schnet", pytest.param("painn", marks=pytest.mark.slow)])
def test_gradient_in_parameters_matches_finite_differences(name):
    """Force matching differentiates forces (a gradient) with respect to parameters."""
    model = tiny(name)
    r, s = molecule(4)
    # e_ref and scale are set from data, not trained (the model stops their gradient).
    trained = eqx.tree_at(
        lambda m: (m.e_ref, m.scale), jax.tree.map(eqx.is_inexact_array, model), (False, False)
    )
    diff, static = eqx.partition(model, trained)
    flat, unravel = jax.flatten_util.ravel_pytree(diff)

    def loss(p):
        m = eqx.combine(unravel(p), static)
        f = -jax.grad(m)(jnp.asarray(r), jnp.asarray(s))
        return jnp.sum(f**2) + m(jnp.asarray(r), jnp.asarray(s))

    check_grads(jax.jit(loss), (flat,), order=1, modes=["rev"])


# PaiNN in the slow tier (default tier under 10 min); SchNet keeps the default one.
@pytest.mark.parametrize("name", ["schnet", pytest.param("painn", marks=pytest.mark.slow)])
def test_energy_and_force_continuous_at_cutoff(name):
    model = tiny(name, cutoff=4.0)
    s = jnp.asarray([1, 2])

    def dimer(d):
        e, f = energy_forces(model, np.asarray([[0.0, 0.0, 0.0], [d, 0.0, 0.0]]), s)
        return e, -f[1, 0]

    e_far, f_far = dimer(4.5)
    assert f_far == 0.0
    single = float(model(jnp.zeros((1, 3)), s[:1]) + model(jnp.zeros((1, 3)), s[1:]))
    assert e_far == pytest.approx(single, abs=1e-12)
    # The envelope vanishes with two derivatives: energy ~ (rc - r)^3, force ~ (rc - r)^2.
    assert abs(dimer(4.0 - 1e-3)[0] - e_far) < 1e-8 and abs(dimer(4.0 - 1e-3)[1]) < 1e-5
    # Each gap 4x closer: the energy shrinks at least like (rc - r)^3, the force like
    # (rc - r)^2 (the envelope's two vanishing derivatives).
    de = np.array([abs(dimer(4.0 - g)[0] - e_far) for g in (0.1, 0.025)])
    df = np.array([abs(dimer(4.0 - g)[1]) for g in (0.1, 0.025, 0.00625)])
    assert np.all(de > 0) and np.all(df > 0)
    assert de[1] / de[0] < 2 / 64 and np.all(df[1:] / df[:-1] < 2 / 16)


# PaiNN in the slow tier (default tier under 10 min: its float64 compilations); SchNet stays.
@pytest.mark.parametrize("name", ["schnet", pytest.param("painn", marks=pytest.mark.slow)])
def test_far_apart_molecules_add(name):
    model = tiny(name)
    ra, sa = molecule(5)
    rb, sb = molecule(6)  # the same size as a: one compilation serves both
    rb = rb + np.array([30.0, 0.0, 0.0])
    e_a, f_a = energy_forces(model, ra, sa)
    e_b, f_b = energy_forces(model, rb, sb)
    e, f = energy_forces(model, np.concatenate([ra, rb]), np.concatenate([sa, sb]))
    assert e == pytest.approx(e_a + e_b, rel=1e-12)
    np.testing.assert_allclose(f, np.concatenate([f_a, f_b]), atol=1e-12)


@pytest.mark.parametrize("name", ["schnet", pytest.param("painn", marks=pytest.mark.slow)])
def test_neighbor_list_equals_dense(name):
    model = tiny(name, cutoff=3.0)
    r0, space = md.lattice(108, 0.085, dtype=jnp.float64)  # 10.7 A box
    r = r0 + 0.1 * jax.random.normal(jax.random.key(1), r0.shape)
    s = jnp.asarray(np.random.default_rng(1).integers(0, 3, 108))
    nbrs = md.neighbor_list(r, space, 3.0, skin=0.5, dense=False)
    e1, f1 = energy_forces(model, r, s, space)
    e2, f2 = energy_forces(model, r, s, space, nbrs)
    assert e2 == pytest.approx(e1, rel=1e-12)
    np.testing.assert_allclose(f2, f1, atol=1e-11)
    short = md.neighbor_list(r, space, 2.5, skin=0.2)
    with pytest.raises(ValueError, match="shorter than the potential's cutoff"):
        model(r, s, short, space=space)


def test_bad_input_is_named(unchecked):
    model = tiny("painn")
    with pytest.raises(ValueError, match=r"unknown species: atomic numbers \[29\]"):
        model.species_of([1, 6, 29])
    with pytest.raises(ValueError, match="species must have shape"):
        model(jnp.zeros((3, 3)), jnp.zeros(2, int))
    with pytest.raises(ValueError, match="positions must have shape"):
        model(jnp.zeros((3,)), jnp.zeros(3, int))
    with pytest.raises(ValueError, match="elements must be distinct"):
        pot.PaiNN([1, 1], key=jax.random.key(0))
    with pytest.raises(ValueError, match="cutoff must be > 0"):
        pot.SchNet([1], cutoff=-1.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="box too small"):
        model.bind(jnp.zeros(4, int), md.PeriodicBox.cube(5.0))
    with pytest.raises(ValueError, match="unknown model"):
        pot.make_model("nequip", [1], key=jax.random.key(0))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_and_load_round_trip(tmp_path, name):
    model = tiny(name)
    pot.save_model(tmp_path / "m.eqx", model, {"note": "x"})
    back = pot.load_model(tmp_path / "m.eqx")
    assert type(back) is type(model)
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(back)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert back.elements == model.elements and back.cutoff == model.cutoff
    with pytest.raises(FileNotFoundError, match="no model.eqx"):
        pot.load_model(tmp_path)
    (tmp_path / "junk.eqx").write_bytes(b"\x00\x01 not a model")
    with pytest.raises(ValueError, match="not a diffsim model"):
        pot.load_model(tmp_path / "junk.eqx")


# Slow tier (30 s): the default tier checks trajectory gradients through MD with LJ
# (tests/molecular/test_md_integrators.py) and the model's forces and parameter gradients.
@pytest.mark.slow
def test_learned_energy_drives_md_with_checked_gradient():
    """The model bound to species is an energy like any other: NVE conserves it, and
    the gradient of a trajectory loss equals finite differences and the reversible
    strategy's."""
    model = tiny("schnet")
    r, s = molecule(7, n=5)
    energy = model.bind(jnp.asarray(s))
    vv = md.NVE(energy, dt=0.01)
    v0 = 0.05 * jax.random.normal(jax.random.key(2), r.shape, jnp.float64)
    state = vv.init(jnp.asarray(r), v0)
    _, outs = jax.jit(lambda s0: diffsim.rollout(vv.step, s0, length=200))(state)
    total = outs["potential"] + outs["kinetic"]
    assert float(jnp.max(jnp.abs(total - total[0]))) < 1e-4 * float(jnp.mean(outs["kinetic"]))

    def loss(r0, grad):
        s0 = vv.init(r0, v0)
        sT, _ = diffsim.rollout(vv.step, s0, length=6, grad=grad)
        return jnp.sum(sT.positions[0] ** 2)

    r0 = jnp.asarray(r)
    bptt = jax.jit(lambda x: loss(x, diffsim.BPTT()))
    check_grads(bptt, (r0,), order=1, modes=["rev"])
    g1 = jax.grad(bptt)(r0)
    g2 = jax.jit(jax.grad(lambda x: loss(x, diffsim.Reversible(vv.inverse))))(r0)
    np.testing.assert_allclose(g2, g1, rtol=1e-7, atol=1e-9)
