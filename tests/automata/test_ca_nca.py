"""Growing neural CA: zero-initialised update, alive masking, gradients, target drawing."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffsim.automata import (
    GrowingNCA,
    alive_mask,
    damage,
    draw_target,
    nca_rollout,
    perceive,
    rgba_loss,
    seed_state,
)


def test_untrained_nca_leaves_the_seed_unchanged(getkey):
    nca = GrowingNCA(8, 16, key=getkey())
    x0 = seed_state(9, 9, 8)
    final, frames = eqx.filter_jit(nca_rollout)(nca, x0, 6, key=getkey(), every=3)
    np.testing.assert_array_equal(np.asarray(final), np.asarray(x0))
    assert frames.shape == (2, 9, 9, 8)


def test_perception_is_identity_and_sobel():
    x = jnp.zeros((5, 5, 4)).at[2, 2, 0].set(1.0)
    p = perceive(x)
    assert p.shape == (5, 5, 12)
    np.testing.assert_array_equal(p[..., :4], x)
    # Sobel-x of a point: -1/8, -2/8, -1/8 left of it, the opposite on the right.
    np.testing.assert_allclose(p[1:4, 1, 4], [1 / 8, 2 / 8, 1 / 8])
    np.testing.assert_allclose(p[1:4, 3, 4], [-1 / 8, -2 / 8, -1 / 8])
    np.testing.assert_allclose(p[1, 1:4, 8], [1 / 8, 2 / 8, 1 / 8])


def test_alive_masking_clears_isolated_cells(getkey):
    nca = GrowingNCA(4, 8, fire_rate=1.0, key=getkey())
    nca = eqx.tree_at(lambda m: m.w2, nca, 0.01 * jnp.ones_like(nca.w2))
    x = seed_state(8, 8, 4)
    y = eqx.filter_jit(lambda m, x, k: m.step(x, key=k))(nca, x, getkey())
    alive = np.asarray(alive_mask(x))
    assert alive.sum() == 9
    assert np.all(np.asarray(y)[~alive] == 0)
    assert np.any(np.asarray(y)[alive] != np.asarray(x)[alive])


def test_nca_rollout_gradient_matches_finite_differences(getkey):
    nca = GrowingNCA(4, 2, key=getkey())
    nca = eqx.tree_at(lambda m: m.w2, nca, 0.1 * jax.random.normal(getkey(), nca.w2.shape))
    nca = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, nca)
    x0 = seed_state(5, 5, 4, dtype=jnp.float64).at[2:4, 2:4, 3].set(0.5)
    target = jnp.zeros((5, 5, 4)).at[1:4, 1:4].set(0.7)
    key = getkey()
    params, static = eqx.partition(nca, eqx.is_inexact_array)
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def f(v):
        final, _ = nca_rollout(eqx.combine(unravel(v), static), x0, 3, key=key)
        return rgba_loss(final, target)

    g = jax.jit(jax.grad(f))(flat)
    eps = 1e-6
    fd = jax.jit(jax.vmap(lambda e: (f(flat + eps * e) - f(flat - eps * e)) / (2 * eps)))(
        jnp.eye(flat.size)
    )
    assert np.linalg.norm(g) > 1e-6
    np.testing.assert_allclose(np.asarray(g), np.asarray(fd), rtol=1e-5, atol=1e-9)


def test_damage_and_target(getkey):
    x = jnp.ones((2, 16, 16, 4))
    d = damage(x, key=getkey(), radius=0.25)
    frac = 1 - float(jnp.mean(d[..., 0]))
    assert 0.05 < frac < 0.4
    t = draw_target(16, "heart", pad=2)
    assert t.shape == (20, 20, 4) and t.dtype == np.float32
    assert 0.1 < t[..., 3].mean() < 0.9 and np.all(t[..., :3] <= t[..., 3:] + 1e-6)
    assert t[0, 0, 3] == 0  # padding is transparent
    with pytest.raises(ValueError, match="kind"):
        draw_target(16, "dragon")
    with pytest.raises(ValueError, match="channels"):
        GrowingNCA(3, key=getkey())
