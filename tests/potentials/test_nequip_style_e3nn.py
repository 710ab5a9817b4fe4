"""The benchmarks' NequIP-style e3nn-jax reference (`benchmarks/_nequip_style_e3nn.py`):
E(3) equivariance, forces against finite differences, the neighbour-list path.

`bench_potential.py` times diffsim's models against it, so it is tested like them."""

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim.molecular as md
import diffsim.potentials as pot

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _nequip_style_e3nn import NequIPStyleE3nn  # noqa: E402

ELEMENTS = (1, 6, 8)


def small_model(cutoff=4.0):
    """Two layers of 4x0e + 4x1o + 4x2e: every path (l = 0, 1, 2 and the gate) is there."""
    m = NequIPStyleE3nn(
        ELEMENTS,
        cutoff=cutoff,
        hidden="4x0e + 4x1o + 4x2e",
        layers=2,
        n_rbf=6,
        radial_hidden=(8,),
        key=jax.random.key(0),
    )
    m = m.with_reference(jnp.arange(1.0, 4.0), 0.7)
    return pot.astype(m, jnp.float64)


def cluster(seed=0, n=7):
    rng = np.random.default_rng(seed)
    pts = []
    while len(pts) < n:
        p = rng.uniform(-1.6, 1.6, 3)
        if all(np.linalg.norm(p - q) > 0.9 for q in pts):
            pts.append(p)
    return jnp.asarray(np.array(pts)), jnp.asarray(rng.integers(0, 3, n))


@eqx.filter_jit
def energy_forces(model, r, s):
    e, g = jax.value_and_grad(model)(r, s)
    return e, -g


@pytest.mark.slow  # default tier under 10 min: the benchmark's reference model, not the library
def test_e3_equivariance_and_forces_against_finite_differences():
    model = small_model()
    r, s = cluster()
    e, f = energy_forces(model, r, s)
    assert float(jnp.max(jnp.abs(f))) > 1e-3  # forces are not trivially zero
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    perm = rng.permutation(len(s))
    for Q in (q, -q):  # a rotation or rotoreflection, and its composition with inversion
        Q = jnp.asarray(Q)
        r2 = (r @ Q.T + jnp.array([[2.0, -1.0, 0.5]]))[perm]
        e2, f2 = energy_forces(model, r2, s[perm])
        np.testing.assert_allclose(e2, e, rtol=1e-12)
        np.testing.assert_allclose(f2, (f @ Q.T)[perm], atol=1e-11)
    # Not invariant by using scalars only: the first layer carries l = 1 and 2 features.
    assert {ir.l for _, ir in model.interactions[0].irreps_out} == {0, 1, 2}
    # Forces against central differences of E along random directions and single
    # coordinates, through the one compiled `energy_forces` (one test: one compilation).
    r, s = cluster(seed=3)
    _, f = energy_forces(model, r, s)
    rng = np.random.default_rng(0)
    h = 1e-5
    directions = [jnp.asarray(rng.normal(size=r.shape)) for _ in range(3)]
    directions += [jnp.zeros_like(r).at[a, k].set(1.0) for a, k in [(0, 0), (3, 1), (6, 2)]]
    for d in directions:
        fd = (energy_forces(model, r + h * d, s)[0] - energy_forces(model, r - h * d, s)[0]) / (
            2 * h
        )
        np.testing.assert_allclose(fd, -jnp.sum(f * d), rtol=1e-7, atol=1e-9)


@pytest.mark.slow  # two more compilations of the model
def test_neighbour_list_path_equals_dense():
    """In a periodic box larger than twice the cutoff, a neighbour list gives the same
    energy and forces as the dense minimum-image path."""
    model = small_model(cutoff=3.0)
    r, space = md.lattice(32, 0.05, dtype=jnp.float64)
    r = r + jax.random.normal(jax.random.key(2), r.shape) * 0.1
    s = jnp.arange(32) % 3
    nbrs = md.neighbor_list(r, space, 3.0, skin=0.0)

    @eqx.filter_jit
    def ef(model, r, nbrs):
        e, g = jax.value_and_grad(lambda x: model(x, s, nbrs, space=space))(r)
        return e, -g

    e_dense, f_dense = ef(model, r, None)
    e_nl, f_nl = ef(model, r, nbrs)
    np.testing.assert_allclose(e_nl, e_dense, rtol=1e-12)
    np.testing.assert_allclose(f_nl, f_dense, atol=1e-11)
    np.testing.assert_allclose(f_dense.sum(0), 0.0, atol=1e-11)  # no net force


# Slow tier (12 s): the reference is a benchmark helper, not library code.
@pytest.mark.slow
def test_one_layer_reference_is_equivariant_and_conservative():
    """The default tier's check of the reference (the two above are slow): one layer of
    2x0e + 2x1o + 2x2e on 5 atoms, float64, one compilation. Energy invariant and forces
    equivariant under a rotoreflection, permutation and translation; forces equal to
    central differences of the energy along a random direction."""
    model = NequIPStyleE3nn(
        ELEMENTS,
        cutoff=4.0,
        hidden="2x0e + 2x1o + 2x2e",
        layers=1,
        n_rbf=4,
        radial_hidden=(4,),
        key=jax.random.key(1),
    )
    model = pot.astype(model.with_reference(jnp.arange(1.0, 4.0), 0.7), jnp.float64)
    r, s = cluster(seed=5, n=5)
    e, f = energy_forces(model, r, s)
    assert float(jnp.max(jnp.abs(f))) > 1e-3
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q = jnp.asarray(-q if np.linalg.det(q) > 0 else q)  # a rotoreflection
    perm = rng.permutation(5)
    e2, f2 = energy_forces(model, (r @ q.T + jnp.array([[0.3, -1.2, 2.0]]))[perm], s[perm])
    np.testing.assert_allclose(e2, e, rtol=1e-12)
    np.testing.assert_allclose(f2, (f @ q.T)[perm], atol=1e-11)
    d = jnp.asarray(rng.normal(size=r.shape))
    h = 1e-5
    fd = (energy_forces(model, r + h * d, s)[0] - energy_forces(model, r - h * d, s)[0]) / (2 * h)
    np.testing.assert_allclose(fd, -jnp.sum(f * d), rtol=1e-7, atol=1e-9)
