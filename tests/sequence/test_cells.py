"""Recurrent cells on diffsim.rollout: equations, masks, gradients, truncation semantics."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import diffsim
from diffsim import sequence as sq


def _f64(tree):
    return jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, tree)


def test_gru_lstm_match_equinox(getkey):
    x = jax.random.normal(getkey(), (3, 4))
    gru = sq.GRUCell(4, 5, key=getkey())
    ref = eqx.nn.GRUCell(4, 5, key=getkey())
    ref = eqx.tree_at(
        lambda c: (c.weight_ih, c.weight_hh, c.bias, c.bias_n),
        ref,
        (gru.weight_ih, gru.weight_hh, gru.bias, gru.bias_n),
    )
    lstm = sq.LSTMCell(4, 5, key=getkey())
    lref = eqx.nn.LSTMCell(4, 5, use_bias=True, key=getkey())
    lref = eqx.tree_at(
        lambda c: (c.weight_ih, c.weight_hh, c.bias),
        lref,
        (lstm.weight_ih, lstm.weight_hh, lstm.bias),
    )

    @jax.jit
    def both(x):
        h, (lh, lc) = gru.init_state(), lstm.init_state()
        rh, (rlh, rlc) = jnp.zeros(5), (jnp.zeros(5), jnp.zeros(5))
        for t in range(3):
            h, _ = gru(h, x[t])
            rh = ref(x[t], rh)
            (lh, lc), _ = lstm((lh, lc), x[t])
            rlh, rlc = lref(x[t], (rlh, rlc))
        return h, rh, lh, rlh, lc, rlc

    h, rh, lh, rlh, lc, rlc = both(x)
    np.testing.assert_allclose(h, rh, rtol=1e-12)
    np.testing.assert_allclose(lh, rlh, rtol=1e-12)
    np.testing.assert_allclose(lc, rlc, rtol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_gradients_match_finite_differences(kind, getkey):
    layers = sq.recurrent_layers(kind, 2, bidirectional=kind == "lstm", key=getkey())
    model = _f64(sq.SequenceClassifier(layers, 2, pool="mean", key=getkey()))
    x = jax.random.normal(getkey(), (4, 4))
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(p, x):
        return sq.cross_entropy(eqx.combine(p, static)(jnp.asarray(x))[None], jnp.array([1]))

    check_grads(jax.jit(loss), (params, x), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_mask_gives_unpadded_outputs(getkey):
    layer = sq.Bidirectional.of("lstm", 4, 3, key=getkey())
    x = jnp.asarray(sq.one_hot("ACGTTGCA"), jnp.float64)
    padded, mask = sq.pad_batch([x], length=12)
    clf = sq.SequenceClassifier((layer,), 3, pool="last", key=getkey())

    @jax.jit
    def both(xp, m, x):
        return layer(xp, m)[:8], layer(x), clf(xp, m), clf(x)

    a, b, c, d = both(jnp.asarray(padded[0]), jnp.asarray(mask[0]), x)
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(c, d)


def test_backward_direction_reads_reversed(getkey):
    cell = sq.GRUCell(4, 3, key=getkey())
    x = jax.random.normal(getkey(), (5, 4))
    back = sq.Recurrent(cell, reverse=True)(x)
    fwd = sq.Recurrent(cell)(x[::-1])
    np.testing.assert_allclose(back, fwd[::-1], rtol=1e-12)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_strategies_give_bptt_gradient(kind, getkey):
    cell = _f64(sq.make_cell(kind, 4, 3, key=getkey()))
    x = jax.random.normal(getkey(), (9, 4))

    def loss(cell, grad):
        return jnp.sum(sq.Recurrent(cell, grad)(x)[-1] ** 2)

    g0 = eqx.filter_grad(loss)(cell, diffsim.BPTT())
    for grad in [diffsim.Checkpointed(), diffsim.Truncated(9), diffsim.Truncated(50)]:
        g = eqx.filter_grad(loss)(cell, grad)
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g0)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_truncated_is_bptt_of_the_last_block(getkey):
    """Truncated(k): the gradient of the last output equals BPTT through the last block
    from a constant entering state; the credit beyond it is exactly zero."""
    cell = _f64(sq.RNNCell(4, 3, key=getkey()))
    x = jax.random.normal(getkey(), (12, 4))

    def loss_trunc(cell, x):
        return jnp.sum(sq.Recurrent(cell, diffsim.Truncated(4))(x)[-1])

    def loss_manual(cell, x):
        h = jax.lax.stop_gradient(sq.Recurrent(cell).final_state(x[:8]))
        for t in range(8, 12):
            h, _ = cell(h, x[t])
        return jnp.sum(h)

    gt = eqx.filter_grad(loss_trunc)(cell, x)
    gm = eqx.filter_grad(loss_manual)(cell, x)
    for a, b in zip(jax.tree.leaves(gt), jax.tree.leaves(gm)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    gx = jax.grad(loss_trunc, argnums=1)(cell, x)
    assert np.all(gx[:8] == 0) and np.all(np.abs(gx[8:]).sum(1) > 0)


@pytest.mark.slow  # default tier under 10 min; the credit_distance experiment tests run beside it
def test_credit_decays_exponentially_for_vanilla_rnn(getkey):
    xs, labels, truth = sq.branch_point_task(getkey(), 2, 40)
    xs = xs.astype(jnp.float64)
    credit = {}
    for kind in ["rnn", "gru", "lstm"]:
        layers = sq.recurrent_layers(
            kind, 8, timescale=None if kind == "rnn" else 200.0, key=jax.random.key(1)
        )
        model = _f64(sq.SequenceClassifier(layers, 2, key=jax.random.key(2)))
        credit[kind] = np.asarray(
            sq.credit_by_distance(lambda x, m=model: sq.cross_entropy(m(x)[None], labels[:1]), xs)
        )
    rate, r2 = sq.decay_rate(credit["rnn"], 1, 41)
    assert rate < 0.8 and r2 > 0.9  # measured 0.6-0.7, R^2 0.99
    d = truth["dependency"]
    for kind in ["gru", "lstm"]:
        assert sq.decay_rate(credit[kind], 1, 41)[0] > 0.93  # measured 0.97-0.99
        assert credit[kind][d] > 1e6 * credit["rnn"][d]
