"""HMM inference: forward-backward and backprop marginals against brute force and references."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dynamax.hidden_markov_model import hmm_smoother as dyn_smoother
from hmmlearn import _hmmc
from jax.test_util import check_grads

import diffsim
from diffsim import messages as msg

STRATEGIES = [
    diffsim.BPTT(),
    pytest.param(diffsim.Checkpointed(), marks=pytest.mark.slow),
    pytest.param(diffsim.DiscreteAdjoint(), marks=pytest.mark.slow),
]


def tiny_model(seed, K=3, T=5, zeros=True):
    rng = np.random.default_rng(seed)
    A = rng.dirichlet(np.ones(K), size=K)
    if zeros:
        A[0, 1] = A[2, 0] = 0.0
        A /= A.sum(axis=1, keepdims=True)
    pi = rng.dirichlet(np.ones(K))
    lp = rng.normal(size=(T, K)) * 1.5
    return jnp.asarray(pi), jnp.asarray(A), jnp.asarray(lp)


def brute_force(pi, A, lp):
    pi, A, lp = (np.asarray(x) for x in (pi, A, lp))
    T, K = lp.shape
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    with np.errstate(divide="ignore"):
        lw = np.log(pi[paths[:, 0]]) + lp[np.arange(T), paths].sum(1)
        lw = lw + np.log(A[paths[:, :-1], paths[:, 1:]]).sum(1)
    logz = np.logaddexp.reduce(lw)
    w = np.exp(lw - logz)
    marg = np.zeros((T, K))
    pair = np.zeros((T - 1, K, K))
    for t in range(T):
        np.add.at(marg[t], paths[:, t], w)
    for t in range(T - 1):
        np.add.at(pair[t], (paths[:, t], paths[:, t + 1]), w)
    return logz, marg, pair, paths[np.argmax(lw)], lw.max()


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_forward_backward_and_grad_equal_brute_force(seed):
    pi, A, lp = tiny_model(seed)
    logz, marg, pair, best, best_score = brute_force(pi, A, lp)
    fb = eqx.filter_jit(msg.hmm_smoother)(pi, A, lp, pairwise=True)
    gr = eqx.filter_jit(msg.hmm_posterior_by_grad)(pi, A, lp, pairwise=True)
    for post in (fb, gr):
        assert post.log_likelihood == pytest.approx(logz, abs=1e-12)
        np.testing.assert_allclose(post.marginals, marg, atol=1e-12)
        np.testing.assert_allclose(post.pairwise, pair, atol=1e-12)
    np.testing.assert_allclose(gr.marginals, fb.marginals, atol=1e-10)
    np.testing.assert_allclose(gr.pairwise, fb.pairwise, atol=1e-10)
    np.testing.assert_allclose(msg.hmm_filter(pi, A, lp)[1], fb.filtered, atol=1e-14)
    for viterbi in (eqx.filter_jit(msg.hmm_viterbi), eqx.filter_jit(msg.hmm_viterbi_by_grad)):
        path, score = viterbi(pi, A, lp)
        np.testing.assert_array_equal(path, best)
        assert score == pytest.approx(best_score, abs=1e-12)
    assert eqx.filter_jit(msg.hmm_max_score)(pi, A, lp) == pytest.approx(best_score, abs=1e-12)


@pytest.mark.slow
def test_time_varying_transitions_brute_force():
    rng = np.random.default_rng(5)
    pi, _, lp = tiny_model(5, T=4)
    At = jnp.asarray(rng.dirichlet(np.ones(3), size=(3, 3)))
    At = At.at[1, 0, 2].set(0.0)
    At = At / At.sum(-1, keepdims=True)
    K, T = 3, 4
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    with np.errstate(divide="ignore"):
        lw = np.log(np.asarray(pi)[paths[:, 0]]) + np.asarray(lp)[np.arange(T), paths].sum(1)
        lw = lw + sum(np.log(np.asarray(At)[t, paths[:, t], paths[:, t + 1]]) for t in range(T - 1))
    logz = np.logaddexp.reduce(lw)
    marg = np.zeros((T, K))
    for t in range(T):
        np.add.at(marg[t], paths[:, t], np.exp(lw - logz))
    for f in map(
        eqx.filter_jit, (msg.hmm_smoother, msg.hmm_posterior_by_grad, msg.parallel_hmm_smoother)
    ):
        post = f(pi, At, lp)
        assert post.log_likelihood == pytest.approx(logz, abs=1e-12)
        np.testing.assert_allclose(post.marginals, marg, atol=1e-12)
    np.testing.assert_array_equal(msg.hmm_viterbi(pi, At, lp)[0], paths[np.argmax(lw)])
    np.testing.assert_array_equal(msg.hmm_viterbi_by_grad(pi, At, lp)[0], paths[np.argmax(lw)])


@pytest.mark.parametrize("strategy", STRATEGIES, ids=["BPTT", "Checkpointed", "DiscreteAdjoint"])
def test_grad_marginals_every_strategy(strategy):
    pi, A, lp = tiny_model(3, K=4, T=40)
    fb = eqx.filter_jit(msg.hmm_smoother)(pi, A, lp, pairwise=True)
    gr = eqx.filter_jit(msg.hmm_posterior_by_grad)(pi, A, lp, pairwise=True, grad=strategy)
    np.testing.assert_allclose(gr.marginals, fb.marginals, atol=1e-10)
    np.testing.assert_allclose(gr.pairwise, fb.pairwise, atol=1e-10)
    path, _ = eqx.filter_jit(msg.hmm_viterbi_by_grad)(pi, A, lp, grad=strategy)
    np.testing.assert_array_equal(path, eqx.filter_jit(msg.hmm_viterbi)(pi, A, lp)[0])


def test_log_likelihood_gradients_finite_differences():
    pi, A, lp = tiny_model(4, T=6, zeros=False)
    check_grads(
        lambda lp, A: msg.hmm_log_likelihood(pi, A, lp),
        (lp, A),
        order=1,
        modes=["rev"],
        atol=1e-6,
        rtol=1e-6,
    )
    check_grads(
        lambda lp: msg.hmm_log_likelihood(pi, A, lp, grad=diffsim.DiscreteAdjoint()),
        (lp,),
        order=1,
        modes=["rev"],
        atol=1e-6,
        rtol=1e-6,
    )


def test_long_sequence_with_zeros_and_unreachable_state_has_no_nan():
    # State 3 is unreachable (zero initial probability, zero column): its filtered
    # probability is exactly 0 at every step, and log A has -inf entries.
    T = 100_000
    A = jnp.array(
        [[0.9, 0.1, 0.0, 0.0], [0.0, 0.9, 0.1, 0.0], [0.1, 0.0, 0.9, 0.0], [0.3, 0.3, 0.3, 0.1]]
    )
    pi = jnp.array([0.5, 0.5, 0.0, 0.0])
    lp = 3.0 * jax.random.normal(jax.random.key(0), (T, 4))
    lp = lp.at[:, 3].set(-jnp.inf).at[17, 1].set(-jnp.inf)

    def logz(lp, A):
        return msg.hmm_log_likelihood(pi, A, lp)

    ll, (g_lp, g_A) = jax.jit(jax.value_and_grad(logz, argnums=(0, 1)))(lp, A)
    assert np.isfinite(ll)
    assert not np.isnan(g_lp).any() and not np.isnan(g_A).any()
    fb = jax.jit(lambda lp: eqx.filter_jit(msg.hmm_smoother)(pi, A, lp, pairwise=True))(lp)
    gr = jax.jit(lambda lp: eqx.filter_jit(msg.hmm_posterior_by_grad)(pi, A, lp, pairwise=True))(lp)
    assert not np.isnan(gr.pairwise).any() and not np.isnan(fb.pairwise).any()
    assert np.all(gr.pairwise[:, np.asarray(A) == 0] == 0)
    np.testing.assert_allclose(gr.marginals, fb.marginals, atol=1e-10)
    np.testing.assert_allclose(g_lp, fb.marginals, atol=1e-10)
    np.testing.assert_allclose(gr.pairwise, fb.pairwise, atol=1e-10)
    np.testing.assert_allclose(fb.marginals.sum(1), 1.0, atol=1e-12)
    assert np.all(gr.marginals[:, 3] == 0) and gr.marginals[17, 1] == 0


@pytest.mark.slow
def test_long_sequence_viterbi_and_parallel():
    T = 100_000
    A = jnp.array([[0.9, 0.1, 0.0], [0.0, 0.9, 0.1], [0.1, 0.0, 0.9]])
    pi = jnp.array([0.5, 0.5, 0.0])
    lp = 3.0 * jax.random.normal(jax.random.key(0), (T, 3))
    fb = jax.jit(lambda lp: eqx.filter_jit(msg.hmm_smoother)(pi, A, lp))(lp)
    p1, s1 = jax.jit(lambda lp: eqx.filter_jit(msg.hmm_viterbi)(pi, A, lp))(lp)
    p2, s2 = jax.jit(lambda lp: eqx.filter_jit(msg.hmm_viterbi_by_grad)(pi, A, lp))(lp)
    np.testing.assert_array_equal(p1, p2)
    assert s1 == pytest.approx(float(s2), rel=1e-12)
    assert np.all(np.asarray(A)[np.asarray(p1[:-1]), np.asarray(p1[1:])] > 0)
    par = jax.jit(lambda lp: eqx.filter_jit(msg.parallel_hmm_smoother)(pi, A, lp))(lp)
    np.testing.assert_allclose(par.marginals, fb.marginals, atol=1e-9)
    assert par.log_likelihood == pytest.approx(float(fb.log_likelihood), rel=1e-12)


@pytest.mark.slow
def test_float32_long_sequence_stable():
    T = 100_000
    A = jnp.array([[0.95, 0.05, 0.0], [0.0, 0.95, 0.05], [0.05, 0.0, 0.95]], jnp.float32)
    pi = jnp.ones(3, jnp.float32) / 3
    lp = (2.0 * jax.random.normal(jax.random.key(1), (T, 3))).astype(jnp.float32)
    gr = jax.jit(lambda lp: eqx.filter_jit(msg.hmm_posterior_by_grad)(pi, A, lp))(lp)
    fb = jax.jit(lambda lp: eqx.filter_jit(msg.hmm_smoother)(pi, A, lp))(lp)
    assert gr.marginals.dtype == jnp.float32 and np.isfinite(gr.log_likelihood)
    np.testing.assert_allclose(gr.marginals, fb.marginals, atol=2e-4)


def test_mask_equals_zero_potentials():
    pi, A, lp = tiny_model(6, T=8)
    mask = jnp.array([1, 0, 1, 1, 0, 0, 1, 1], bool)
    ref = eqx.filter_jit(msg.hmm_smoother)(pi, A, jnp.where(mask[:, None], lp, 0.0), pairwise=True)
    for f in (eqx.filter_jit(msg.hmm_smoother), eqx.filter_jit(msg.hmm_posterior_by_grad)):
        post = f(pi, A, lp.at[1].set(jnp.nan), mask=mask, pairwise=True)
        np.testing.assert_allclose(post.marginals, ref.marginals, atol=1e-12)
        assert post.log_likelihood == pytest.approx(float(ref.log_likelihood), abs=1e-12)


def test_ragged_batch_equals_separate_runs():
    pi, A, _ = tiny_model(7, K=3)
    rng = np.random.default_rng(7)
    seqs = [rng.normal(size=(n, 3)) for n in (5, 9, 2)]
    padded, lengths = msg.pad_sequences(seqs)
    assert padded.shape == (3, 9, 3)

    @jax.jit
    def batch(padded, lengths):
        def one(lp, n):
            return (
                msg.hmm_log_likelihood(pi, A, lp, length=n),
                msg.hmm_smoother(pi, A, lp, length=n, pairwise=True),
                msg.hmm_posterior_by_grad(pi, A, lp, length=n, pairwise=True),
                msg.hmm_viterbi(pi, A, lp, length=n)[0],
            )

        return jax.vmap(one)(padded, lengths)

    lls, fb, gr, paths = batch(padded, lengths)
    for b, s in enumerate(seqs):
        n = len(s)
        ref = eqx.filter_jit(msg.hmm_smoother)(pi, A, s, pairwise=True)
        assert lls[b] == pytest.approx(float(ref.log_likelihood), abs=1e-12)
        for post in (fb, gr):
            np.testing.assert_allclose(post.marginals[b, :n], ref.marginals, atol=1e-12)
            np.testing.assert_allclose(post.pairwise[b, : n - 1], ref.pairwise, atol=1e-12)
            assert np.all(post.marginals[b, n:] == 0) and np.all(post.pairwise[b, n - 1 :] == 0)
        ref_path = eqx.filter_jit(msg.hmm_viterbi)(pi, A, s)[0]
        np.testing.assert_array_equal(paths[b, :n], ref_path)


def test_parallel_smoother_equals_sequential():
    pi, A, lp = tiny_model(8, K=5, T=77)
    fb = eqx.filter_jit(msg.hmm_smoother)(pi, A, lp)
    par = eqx.filter_jit(msg.parallel_hmm_smoother)(pi, A, lp)
    np.testing.assert_allclose(par.marginals, fb.marginals, atol=1e-12)
    np.testing.assert_allclose(par.filtered, fb.filtered, atol=1e-12)
    assert par.log_likelihood == pytest.approx(float(fb.log_likelihood), rel=1e-13)


def test_agrees_with_dynamax_and_hmmlearn():
    pi, A, lp = tiny_model(9, K=6, T=300, zeros=False)
    fb = eqx.filter_jit(msg.hmm_smoother)(pi, A, lp, pairwise=True)
    dyn = dyn_smoother(pi, A, lp)
    assert fb.log_likelihood == pytest.approx(float(dyn.marginal_loglik), rel=1e-12)
    np.testing.assert_allclose(fb.marginals, dyn.smoothed_probs, atol=1e-10)
    np.testing.assert_allclose(fb.pairwise.sum(0), dyn.trans_probs, atol=1e-9)
    ll, fwd = _hmmc.forward_log(np.asarray(pi), np.asarray(A), np.asarray(lp))
    bwd = _hmmc.backward_log(np.asarray(pi), np.asarray(A), np.asarray(lp))
    post = np.exp(fwd + bwd - np.logaddexp.reduce(fwd + bwd, axis=1, keepdims=True))
    assert fb.log_likelihood == pytest.approx(ll, rel=1e-12)
    np.testing.assert_allclose(fb.marginals, post, atol=1e-10)
    _, path = _hmmc.viterbi(np.asarray(pi), np.asarray(A), np.asarray(lp))
    np.testing.assert_array_equal(msg.hmm_viterbi_by_grad(pi, A, lp)[0], path)


@pytest.mark.slow
def test_sampling_statistics(getkey):
    pi, A, lp = tiny_model(10, K=3, T=4)
    zs = msg.hmm_sample(getkey(), pi, A, 20_000)
    counts = np.zeros((3, 3))
    np.add.at(counts, (np.asarray(zs[:-1]), np.asarray(zs[1:])), 1)
    np.testing.assert_allclose(counts / counts.sum(1, keepdims=True), A, atol=0.02)
    assert np.all(counts[np.asarray(A) == 0] == 0)
    samples = jax.vmap(lambda k: msg.hmm_posterior_sample(k, pi, A, lp))(
        jax.random.split(getkey(), 20_000)
    )
    freq = np.stack([np.bincount(np.asarray(samples[:, t]), minlength=3) for t in range(4)])
    np.testing.assert_allclose(
        freq / 20_000, eqx.filter_jit(msg.hmm_smoother)(pi, A, lp).marginals, atol=0.015
    )
    _, marg, pair, _, _ = brute_force(pi, A, lp)
    s = np.asarray(samples)
    for i, j in zip(*np.nonzero(np.asarray(A) == 0)):
        assert not np.any((s[:, :-1] == i) & (s[:, 1:] == j))


def test_bad_arguments_raise(unchecked):
    pi, A, lp = tiny_model(0)
    with pytest.raises(ValueError, match="transition"):
        eqx.filter_jit(msg.hmm_smoother)(pi, A[:2], lp)
    with pytest.raises(ValueError, match="initial"):
        msg.hmm_log_likelihood(pi[:2], A, lp)
    with pytest.raises(ValueError, match="log_potentials"):
        eqx.filter_jit(msg.hmm_viterbi)(pi, A, lp[0])
    with pytest.raises(ValueError, match="mask"):
        eqx.filter_jit(msg.hmm_smoother)(pi, A, lp, mask=jnp.ones(2, bool))
    with pytest.raises(ValueError, match="length"):
        msg.hmm_sample(jax.random.key(0), pi, A, 0)


@pytest.mark.slow
def test_ragged_viterbi_by_grad():
    pi, A, _ = tiny_model(7, K=3)
    rng = np.random.default_rng(7)
    seqs = [rng.normal(size=(n, 3)) for n in (5, 9, 2)]
    padded, lengths = msg.pad_sequences(seqs)
    gpaths = jax.vmap(
        lambda lp, n: eqx.filter_jit(msg.hmm_viterbi_by_grad)(pi, A, lp, length=n)[0]
    )(padded, lengths)
    for b, s in enumerate(seqs):
        np.testing.assert_array_equal(
            gpaths[b, : len(s)], eqx.filter_jit(msg.hmm_viterbi)(pi, A, s)[0]
        )


def test_transition_counts_equal_summed_pairwise():
    pi, A, lp = tiny_model(11, K=3, T=9)
    post = eqx.filter_jit(msg.hmm_smoother)(pi, A, lp, pairwise=True, transition_counts=True)
    np.testing.assert_allclose(post.transition_counts, post.pairwise.sum(0), atol=1e-13)
    post = eqx.filter_jit(msg.hmm_smoother)(
        pi, A, lp, length=5, pairwise=True, transition_counts=True
    )
    np.testing.assert_allclose(post.transition_counts, post.pairwise.sum(0), atol=1e-13)
