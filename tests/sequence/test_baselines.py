"""Baselines and metrics against scikit-learn; PWM and k-mer features; synthetic task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

from diffsim import sequence as sq


def test_fit_logistic_matches_sklearn(getkey):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6))
    y = (X @ rng.normal(size=(6, 3))).argmax(1)
    ours = sq.fit_logistic(jnp.asarray(X), jnp.asarray(y), 3, l2=2.0, steps=60)
    ref = LogisticRegression(C=0.5, tol=1e-10, max_iter=1000).fit(X, y)
    p_ours = jax.nn.softmax(jax.vmap(ours)(jnp.asarray(X)), -1)
    np.testing.assert_allclose(p_ours, ref.predict_proba(X), atol=1e-5)
    # Stacked fits (folds) equal separate fits.
    w = np.stack([np.arange(120) % 2 == 0, np.arange(120) % 3 != 0]).astype(float)
    stacked = sq.fit_logistic(jnp.asarray(X), jnp.asarray(y), 3, l2=2.0, steps=80, weights=w)
    for j in range(2):
        sel = w[j] > 0
        one = LogisticRegression(C=0.5, tol=1e-10, max_iter=1000).fit(X[sel], y[sel])
        pj = jax.nn.softmax(
            jax.vmap(jax.tree.map(lambda a, j=j: a[j], stacked))(jnp.asarray(X)), -1
        )
        np.testing.assert_allclose(pj, one.predict_proba(X), atol=1e-4)


def test_kmer_features():
    x = jnp.asarray(sq.one_hot("ACGTN"))
    np.testing.assert_array_equal(sq.kmer_features(x, 1), x)
    f = sq.kmer_features(x, 2)
    assert f.shape == (4, 16)
    np.testing.assert_allclose(f.sum(1), 1.0)
    assert f[0, 0 * 4 + 1] == 1.0  # "AC"
    np.testing.assert_allclose(f[3, 12:16], 0.25)  # "TN": T then any base
    with pytest.raises(ValueError, match="k must be"):
        sq.kmer_features(x, 6)


def test_pwm_finds_planted_site():
    sites = np.stack([sq.one_hot("CAGGTAAGT"), sq.one_hot("AAGGTGAGT"), sq.one_hot("CAGGTAAGC")])
    pwm = sq.PWM.from_sites(sites, 3)
    x = sq.one_hot("TTTTTTTTTTCAGGTAAGTTTTTTT")
    s = np.asarray(pwm.score(jnp.asarray(x)))
    assert s.argmax() == 13  # the G of GT: 10 + offset 3
    assert s.shape == (25,)
    with pytest.raises(ValueError, match="offset"):
        sq.PWM.from_sites(sites, 9)


def test_average_precision_and_top_k_match_definitions():
    rng = np.random.default_rng(1)
    y = rng.random(500) < 0.05
    s = y * rng.random(500) + rng.random(500)
    s[:50] = np.round(s[:50], 1)  # some ties
    assert abs(sq.average_precision(s, y) - average_precision_score(y, s)) < 1e-12
    perfect = y.astype(float)
    assert sq.top_k_accuracy(perfect, y) == 1.0 and sq.average_precision(perfect, y) == 1.0
    with pytest.raises(ValueError, match="no positives"):
        sq.average_precision(s, np.zeros(500, bool))


def test_branch_point_task_ground_truth(getkey):
    xs, y, truth = sq.branch_point_task(getkey(), 16, 30, pyrimidine_tract=10)
    assert xs.shape == (16, 37, 4) and truth["dependency"] == 33
    seqs = [sq.decode(x) for x in np.asarray(xs)]
    for s, label in zip(seqs, np.asarray(y)):
        assert s[:5] == (sq.BRANCH_POINT if label else sq.DECOY)
        assert s.endswith("AG") and set(s[-12:-2]) <= set("CT")
    assert 0 < y.sum() < 16
    with pytest.raises(ValueError, match="pyrimidine_tract"):
        sq.branch_point_task(getkey(), 4, 3, pyrimidine_tract=5)
