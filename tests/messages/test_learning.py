"""EM and gradient ascent reach the same optimum on well-posed problems."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import diffsim
from diffsim import messages as msg


@pytest.mark.slow
def test_hmm_em_and_gradient_ascent_same_optimum():
    true = msg.GaussianHMM.from_probs(
        jnp.array([0.5, 0.3, 0.2]),
        jnp.array([[0.9, 0.05, 0.05], [0.1, 0.85, 0.05], [0.0, 0.1, 0.9]]),
        jnp.array([[-2.0], [0.0], [2.5]]),
        jnp.array([[0.5], [0.7], [0.6]]),
    )
    _, ys = true.sample(jax.random.key(1), 400)
    init = msg.GaussianHMM.from_probs(
        jnp.ones(3) / 3,
        jnp.full((3, 3), 0.1) + 0.7 * jnp.eye(3),
        jnp.array([[-1.0], [0.5], [1.5]]),
        jnp.ones((3, 1)),
    )
    em, lls = msg.hmm_em(init, ys, iterations=300, tol=1e-11, learn_initial=False)
    assert all(b >= a - 1e-9 for a, b in zip(lls, lls[1:]))  # EM never decreases

    def loss(m, batch, key):
        m = eqx.tree_at(lambda m: m.initial_logits, m, jax.lax.stop_gradient(m.initial_logits))
        return -m.log_likelihood(ys) / ys.shape[0]

    ga = diffsim.fit(
        loss, init, optax.lbfgs(), steps=150, key=jax.random.key(0), progress=False
    ).params
    assert float(ga.log_likelihood(ys)) == pytest.approx(lls[-1], abs=1e-6)
    np.testing.assert_allclose(ga.means, em.means, atol=1e-4)
    np.testing.assert_allclose(ga.transition, em.transition, atol=1e-4)
    np.testing.assert_allclose(ga.log_scales, em.log_scales, atol=1e-4)
    assert float(ga.log_likelihood(ys)) > float(init.log_likelihood(ys)) + 10


@pytest.mark.slow
def test_lgssm_em_and_gradient_ascent_same_optimum():
    F = jnp.array([[0.9, 0.2], [-0.2, 0.8]])
    true = msg.LGSSM(jnp.zeros(2), jnp.eye(2), F, 0.2 * jnp.eye(2), jnp.eye(2), 0.5 * jnp.eye(2))
    _, ys = msg.lgssm_sample(jax.random.key(2), true, 300)
    init = msg.LGSSM(jnp.zeros(2), jnp.eye(2), 0.5 * jnp.eye(2), jnp.eye(2), jnp.eye(2), jnp.eye(2))
    em, lls = msg.lgssm_em(init, ys, iterations=3000, tol=1e-10)
    assert all(b >= a - 1e-9 for a, b in zip(lls, lls[1:]))

    def loss(p, batch, key):
        return -msg.kalman_log_likelihood(p.model(), ys) / ys.shape[0]

    ga = diffsim.fit(
        loss,
        msg.LGSSMParams.from_model(init),
        optax.lbfgs(),
        steps=150,
        key=jax.random.key(0),
        progress=False,
    ).params.model()
    assert float(msg.kalman_log_likelihood(ga, ys)) == pytest.approx(lls[-1], abs=1e-4)
    np.testing.assert_allclose(ga.dynamics, em.dynamics, atol=2e-3)
    np.testing.assert_allclose(ga.dynamics_cov, em.dynamics_cov, atol=2e-3)
    np.testing.assert_allclose(ga.emission_cov, em.emission_cov, atol=2e-3)
    np.testing.assert_array_equal(ga.emission, init.emission)  # held fixed
