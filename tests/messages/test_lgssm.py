"""Kalman filter, RTS smoother, parallel versions and the smoother-from-gradient identity."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dynamax.linear_gaussian_ssm.inference import lgssm_smoother, make_lgssm_params
from jax.test_util import check_grads

import diffsim
from diffsim import messages as msg


def random_model(seed, n=3, m=2):
    rng = np.random.default_rng(seed)

    def spd(k, s):
        X = rng.normal(size=(k, k))
        return s * (X @ X.T / k + np.eye(k))

    return msg.LGSSM(
        jnp.asarray(rng.normal(size=n)),
        jnp.asarray(spd(n, 1.0)),
        jnp.asarray(0.9 * np.linalg.qr(rng.normal(size=(n, n)))[0]),  # stable
        jnp.asarray(spd(n, 0.3)),
        jnp.asarray(rng.normal(size=(m, n))),
        jnp.asarray(spd(m, 0.5)),
    )


def dense(model, ys, inputs=None, mask=None):
    """Posterior means/covariances of all states and log p(y) by dense conditioning."""
    F, Q, H, R = (
        np.asarray(a)
        for a in (model.dynamics, model.dynamics_cov, model.emission, model.emission_cov)
    )
    T, n = ys.shape[0], F.shape[0]
    u = np.zeros((T, n)) if inputs is None else np.asarray(inputs)
    G = np.zeros((T * n, T * n))
    for t in range(T):
        for s in range(t + 1):
            G[t * n : (t + 1) * n, s * n : (s + 1) * n] = np.linalg.matrix_power(F, t - s)
    W = np.kron(np.eye(T), Q)
    W[:n, :n] = np.asarray(model.initial_cov)
    shift = u.copy()
    shift[0] += np.asarray(model.initial_mean)
    mu = G @ shift.ravel()
    cov = G @ W @ G.T
    keep = np.ones(T, bool) if mask is None else np.asarray(mask)
    Hb = np.kron(np.eye(T), H)[np.repeat(keep, H.shape[0])]
    S = Hb @ cov @ Hb.T + np.kron(np.eye(int(keep.sum())), R)
    e = np.asarray(ys)[keep].ravel() - Hb @ mu
    mean = mu + cov @ Hb.T @ np.linalg.solve(S, e)
    post = cov - cov @ Hb.T @ np.linalg.solve(S, Hb @ cov)
    ll = -0.5 * (e @ np.linalg.solve(S, e) + np.linalg.slogdet(S)[1] + e.size * np.log(2 * np.pi))
    return mean.reshape(T, n), post, ll


@pytest.mark.parametrize("with_inputs", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_smoothers_equal_dense_conditioning(with_inputs):
    model = random_model(0)
    T, n = 7, 3
    _, ys = msg.lgssm_sample(jax.random.key(0), model, T)
    u = jnp.asarray(np.random.default_rng(1).normal(size=(T, n))) if with_inputs else None
    mean, cov, ll = dense(model, ys, u)
    posts = [eqx.filter_jit(msg.rts_smoother)(model, ys, inputs=u)]
    if with_inputs:  # the parallel smoother's compilation is slow: in the slow tier
        posts.append(eqx.filter_jit(msg.parallel_rts_smoother)(model, ys, inputs=u))
    for post in posts:
        assert post.log_likelihood == pytest.approx(ll, abs=1e-10)
        np.testing.assert_allclose(post.smoothed_means, mean, atol=1e-10)
        for t in range(T):
            np.testing.assert_allclose(
                post.smoothed_covs[t], cov[t * n : (t + 1) * n, t * n : (t + 1) * n], atol=1e-10
            )
    cross = eqx.filter_jit(msg.rts_smoother)(model, ys, inputs=u).smoothed_cross_covs
    for t in range(T - 1):
        np.testing.assert_allclose(
            cross[t], cov[t * n : (t + 1) * n, (t + 1) * n : (t + 2) * n], atol=1e-10
        )
    assert msg.kalman_log_likelihood(model, ys, inputs=u) == pytest.approx(ll, abs=1e-10)
    means, _ = eqx.filter_jit(msg.smoothed_means_by_grad)(model, ys, inputs=u)
    np.testing.assert_allclose(means, mean, atol=1e-10)


@pytest.mark.parametrize(
    "strategy",
    [
        diffsim.BPTT(),
        pytest.param(diffsim.Checkpointed(), marks=pytest.mark.slow),
        pytest.param(diffsim.DiscreteAdjoint(), marks=pytest.mark.slow),
    ],
    ids=["BPTT", "Checkpointed", "DiscreteAdjoint"],
)
def test_identity_every_strategy_and_observation_identity(strategy):
    model = random_model(1, n=4, m=2)
    _, ys = msg.lgssm_sample(jax.random.key(1), model, 60)
    post = eqx.filter_jit(msg.rts_smoother)(model, ys)
    means, g = eqx.filter_jit(msg.smoothed_means_by_grad)(model, ys, grad=strategy)
    np.testing.assert_allclose(means, post.smoothed_means, rtol=0, atol=1e-10)
    # g_t = Q^{-1}(s_t - F s_{t-1}) for t >= 1: the costate is the smoothed noise.
    s = post.smoothed_means
    resid = s[1:] - s[:-1] @ model.dynamics.T
    np.testing.assert_allclose(
        g[1:], jnp.linalg.solve(model.dynamics_cov, resid.T).T, rtol=0, atol=1e-9
    )
    gy = jax.grad(lambda y: msg.kalman_log_likelihood(model, y))(ys)
    np.testing.assert_allclose(s @ model.emission.T, ys + gy @ model.emission_cov.T, atol=1e-10)


@pytest.mark.slow
def test_masked_observations():
    model = random_model(2)
    T = 8
    _, ys = msg.lgssm_sample(jax.random.key(2), model, T)
    mask = jnp.array([1, 0, 1, 1, 0, 0, 1, 1], bool)
    mean, _, ll = dense(model, ys, mask=mask)
    ys_nan = ys.at[1].set(jnp.nan)
    for post in (
        eqx.filter_jit(msg.rts_smoother)(model, ys_nan, mask=mask),
        eqx.filter_jit(msg.parallel_rts_smoother)(model, ys_nan, mask=mask),
    ):
        assert post.log_likelihood == pytest.approx(ll, abs=1e-10)
        np.testing.assert_allclose(post.smoothed_means, mean, atol=1e-10)
    np.testing.assert_allclose(
        eqx.filter_jit(msg.smoothed_means_by_grad)(model, ys_nan, mask=mask)[0], mean, atol=1e-10
    )


@pytest.mark.slow
def test_agrees_with_dynamax_short():
    model = random_model(3, n=4, m=2)
    _, ys = msg.lgssm_sample(jax.random.key(3), model, 50)
    post = eqx.filter_jit(msg.rts_smoother)(model, ys)
    params = make_lgssm_params(
        model.initial_mean,
        model.initial_cov,
        model.dynamics,
        model.dynamics_cov,
        model.emission,
        model.emission_cov,
    )
    ref = lgssm_smoother(params, ys)
    assert post.log_likelihood == pytest.approx(float(ref.marginal_loglik), rel=1e-10)
    np.testing.assert_allclose(post.smoothed_means, ref.smoothed_means, rtol=0, atol=1e-7)


@pytest.mark.slow
def test_agrees_with_dynamax_and_parallel_long():
    model = random_model(3, n=4, m=2)
    model = msg.LGSSM(
        model.initial_mean,
        model.initial_cov,
        0.9 * jnp.linalg.qr(model.dynamics)[0],
        model.dynamics_cov,
        model.emission,
        model.emission_cov,
    )
    _, ys = msg.lgssm_sample(jax.random.key(3), model, 2000)
    post = jax.jit(lambda y: eqx.filter_jit(msg.rts_smoother)(model, y))(ys)
    params = make_lgssm_params(
        model.initial_mean,
        model.initial_cov,
        model.dynamics,
        model.dynamics_cov,
        model.emission,
        model.emission_cov,
    )
    ref = lgssm_smoother(params, ys)
    assert post.log_likelihood == pytest.approx(float(ref.marginal_loglik), rel=1e-10)
    np.testing.assert_allclose(post.smoothed_means, ref.smoothed_means, atol=1e-7)
    np.testing.assert_allclose(post.smoothed_covs, ref.smoothed_covariances, atol=1e-7)
    par = jax.jit(lambda y: eqx.filter_jit(msg.parallel_rts_smoother)(model, y))(ys)
    np.testing.assert_allclose(par.smoothed_means, post.smoothed_means, atol=1e-10)
    np.testing.assert_allclose(par.smoothed_covs, post.smoothed_covs, atol=1e-10)
    assert par.log_likelihood == pytest.approx(float(post.log_likelihood), rel=1e-12)
    filt = jax.jit(lambda y: eqx.filter_jit(msg.parallel_kalman_filter)(model, y))(ys)
    np.testing.assert_allclose(filt.filtered_means, post.filtered_means, atol=1e-10)
    means = jax.jit(lambda y: eqx.filter_jit(msg.smoothed_means_by_grad)(model, y)[0])(ys)
    np.testing.assert_allclose(means, post.smoothed_means, atol=1e-9)


def test_log_likelihood_gradients_finite_differences():
    model = random_model(4, n=2, m=1)
    _, ys = msg.lgssm_sample(jax.random.key(4), model, 6)
    check_grads(
        jax.jit(lambda F, ys: msg.kalman_log_likelihood(eqx_replace(model, F), ys)),
        (model.dynamics, ys),
        order=1,
        modes=["rev"],
        atol=1e-6,
        rtol=1e-6,
    )


def eqx_replace(model, F):
    return msg.LGSSM(
        model.initial_mean,
        model.initial_cov,
        F,
        model.dynamics_cov,
        model.emission,
        model.emission_cov,
    )


def test_bad_arguments_raise(unchecked):
    model = random_model(0)
    with pytest.raises(ValueError, match="ys"):
        msg.kalman_filter(model, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="inputs"):
        eqx.filter_jit(msg.rts_smoother)(model, jnp.zeros((5, 2)), inputs=jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="dynamics"):
        msg.LGSSM(jnp.zeros(2), jnp.eye(2), jnp.eye(3), jnp.eye(2), jnp.ones((1, 2)), jnp.eye(1))
