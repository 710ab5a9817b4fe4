"""diffsim.neuro: predictive coding, feedback alignment and backprop on one equinox MLP.

Every identity is checked against `jax.grad` in float64; the locality of every learning
rule is checked by differentiating through the update and by perturbing other layers.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffsim import neuro


def problem(getkey, sizes=(6, 9, 7, 4), batch=5, activation=jnp.tanh):
    net = neuro.MLP(sizes, activation, key=getkey())
    x = jax.random.normal(getkey(), (batch, sizes[0]))
    y = jax.nn.one_hot(jnp.arange(batch) % sizes[-1], sizes[-1])
    return net, x, y


def leaves(tree):
    return jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))


def assert_trees_close(a, b, atol):
    for u, v in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(u, v, rtol=0, atol=atol)


def test_mlp_is_an_ordinary_mlp(getkey):
    net, x, _ = problem(getkey)
    h = x @ net.layers[0].weight.T + net.layers[0].bias[None]
    for layer in net.layers[1:]:
        h = jnp.tanh(h) @ layer.weight.T + layer.bias[None]
    np.testing.assert_allclose(net(x), h, rtol=1e-14)
    np.testing.assert_allclose(net(x[0]), h[0], rtol=1e-14)
    assert net.sizes == [6, 9, 7, 4]
    # at the feedforward pass every error node is zero
    assert all(float(jnp.max(jnp.abs(e))) == 0 for e in net.errors(net.activities(x)))
    with pytest.raises(ValueError, match="sizes"):
        neuro.MLP([3], key=getkey())


def test_value_gradients_are_the_energy_gradient(getkey):
    net, x, y = problem(getkey)
    precision = 0.3
    ff = net.activities(x)
    hidden = tuple(h + 0.3 * jax.random.normal(getkey(), h.shape) for h in ff[1:-1])
    energy = lambda hs: net.energy((x, *hs, y), precision)
    expected = jax.grad(energy)(hidden)
    got = neuro.value_gradients(net, (x, *hidden, y), precision)
    assert_trees_close(got, expected, 1e-13)


def test_backprop_rule_is_jax_grad(getkey):
    net, x, y = problem(getkey)
    g = neuro.rule_gradients(neuro.Backprop(), net, x, y)
    ref = jax.grad(neuro.mse_loss)(net, x, y)
    assert float(neuro.relative_error(g, ref)) < 1e-13


@pytest.mark.parametrize(
    "sizes, activation",
    [
        ((5, 3), jnp.tanh),
        ((6, 9, 7, 4), jax.nn.sigmoid),
        ((4, 6, 5, 6, 3), jax.nn.softplus),
    ],
    ids=["L1-tanh", "L3-sigmoid", "L4-softplus"],
)
def test_exact_pc_variants_equal_backprop(getkey, sizes, activation):
    net, x, y = problem(getkey, sizes, activation=activation)
    ref = eqx.filter_jit(jax.grad(neuro.mse_loss))(net, x, y)
    rules = [neuro.FixedPredictionPC(), neuro.ZeroDivergencePC()]  # rate 1, L - 1 iterations
    if len(sizes) == 4:
        rules.append(neuro.FixedPredictionPC(0.5, neuro.UntilConverged(1e-13, 10_000, 5)))
    for rule in rules:
        g = neuro.rule_gradients(rule, net, x, y)
        assert_trees_close(g, ref, 1e-6)  # the tolerance
        assert float(neuro.relative_error(g, ref)) < 1e-11  # measured: ~4e-16


def test_exactness_needs_the_error_to_reach_every_layer(getkey):
    net, x, y = problem(getkey, (5, 6, 6, 6, 3))
    ref = jax.grad(neuro.mse_loss)(net, x, y)
    short = neuro.FixedPredictionPC(1.0, neuro.FixedIterations(2))  # L - 1 = 3 needed
    g = neuro.rule_gradients(short, net, x, y)
    assert float(jnp.max(jnp.abs(g.layers[0].weight))) == 0.0
    assert float(neuro.relative_error(g, ref)) > 1e-3
    assert float(neuro.relative_error(g.layers[1:], ref.layers[1:])) < 1e-13


def test_layer_update_is_outer_of_error_and_presynaptic_rate(getkey):
    net, _, _ = problem(getkey)
    for layer in net.layers:
        pre = jax.random.normal(getkey(), (layer.weight.shape[1],))
        err = jax.random.normal(getkey(), (layer.weight.shape[0],))
        dw, db = layer.update(pre, err)
        np.testing.assert_array_equal(dw, jnp.outer(err, layer.activation(pre)))
        np.testing.assert_array_equal(db, err)
        pres = jax.random.normal(getkey(), (3, layer.weight.shape[1]))
        errs = jax.random.normal(getkey(), (3, layer.weight.shape[0]))
        dws, dbs = jax.vmap(layer.update)(pres, errs)
        dw, db = layer.batch_update(pres, errs)
        np.testing.assert_allclose(dw, jnp.mean(dws, 0), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(db, jnp.mean(dbs, 0), rtol=1e-13, atol=1e-15)


def test_local_updates_see_only_their_own_layer(getkey):
    net, x, y = problem(getkey, (3, 4, 3, 2), batch=2)
    pres, errs = neuro.PredictiveCoding(0.1, neuro.FixedIterations(7)).signals(net, x, y)
    L = len(net.layers)
    # Perturbing every other layer's pre-activity, error and weights, and this layer's own
    # weights, leaves layer l's update bitwise unchanged; its own pre and err change it.
    base = neuro.local_updates(net, pres, errs)
    for l in range(L):
        noisy_net = net
        noisy_pres, noisy_errs = list(pres), list(errs)
        for k in range(L):
            if k == l:
                continue
            noisy_pres[k] = pres[k] + jax.random.normal(getkey(), pres[k].shape)
            noisy_errs[k] = errs[k] + jax.random.normal(getkey(), errs[k].shape)
            noisy_net = eqx.tree_at(
                lambda n, k=k: n.layers[k].weight, noisy_net, 2 * net.layers[k].weight
            )
        noisy_net = eqx.tree_at(lambda n, l=l: n.layers[l].weight, noisy_net, -net.layers[l].weight)
        other = neuro.local_updates(noisy_net, tuple(noisy_pres), tuple(noisy_errs))
        np.testing.assert_array_equal(other.layers[l].weight, base.layers[l].weight)
        np.testing.assert_array_equal(other.layers[l].bias, base.layers[l].bias)
        own = list(pres)
        own[l] = pres[l] + 0.1
        moved = neuro.local_updates(net, tuple(own), errs)
        assert not np.array_equal(moved.layers[l].weight, base.layers[l].weight)
    with pytest.raises(ValueError, match="one \\(pre, err\\) per layer"):
        neuro.local_updates(net, pres[:-1], errs)


def rules(net, key):
    return [
        neuro.Backprop(),
        neuro.PredictiveCoding(0.1, neuro.FixedIterations(10)),
        neuro.ZeroDivergencePC(),
        neuro.FeedbackAlignment(net, key=key),
        neuro.DirectFeedbackAlignment(net, key=key),
    ]


def test_every_rule_is_a_local_update_of_its_signals(getkey):
    net, x, y = problem(getkey)
    for rule in rules(net, getkey()):
        pres, errs = rule.signals(net, x, y)
        for layer, p, e in zip(net.layers, pres, errs, strict=True):
            assert p.shape == (x.shape[0], layer.weight.shape[1])
            assert e.shape == (x.shape[0], layer.weight.shape[0])
        g = neuro.rule_gradients(rule, net, x, y)
        expected = jax.tree.map(jnp.negative, neuro.local_updates(net, pres, errs))
        assert_trees_close(g, expected, 1e-15)  # jit vs eager: rounding only
    # PC's signals are its own value and error neurons after inference
    s = neuro.infer(net, x, y, rate=0.1, inference=neuro.FixedIterations(10))
    pres, errs = neuro.PredictiveCoding(0.1, neuro.FixedIterations(10)).signals(net, x, y)
    assert_trees_close(pres, s.values[:-1], 0.0)
    assert_trees_close(errs, s.errors, 0.0)
    assert_trees_close(s.errors, net.errors(s.values), 0.0)


def test_pc_with_no_inference_is_backprop_at_the_output_only(getkey):
    net, x, y = problem(getkey)
    ref = jax.grad(neuro.mse_loss)(net, x, y)
    g = neuro.rule_gradients(neuro.PredictiveCoding(0.1, neuro.FixedIterations(0)), net, x, y)
    assert float(neuro.relative_error(g.layers[-1], ref.layers[-1])) < 1e-13
    assert float(jnp.max(jnp.abs(g.layers[0].weight))) == 0.0


@pytest.mark.slow
def test_pc_approaches_backprop_with_iterations_rate_and_precision(getkey):
    net, x, y = problem(getkey, batch=16)
    ref = jax.grad(neuro.mse_loss)(net, x, y)
    iterations, rates = [0, 2, 8, 128], [0.05, 0.1, 0.2]

    def measure(rate, n):
        g = neuro.rule_gradients(neuro.PredictiveCoding(rate, neuro.FixedIterations(n)), net, x, y)
        return float(neuro.cosine_similarity(g, ref)), float(neuro.relative_error(g, ref))

    m = np.array([[measure(jnp.asarray(r), n) for n in iterations] for r in rates])
    cos, rel = m[..., 0], m[..., 1]
    assert np.all(np.diff(rel[:, :3], axis=1) < 0)  # more iterations: closer
    assert np.all(np.diff(rel[:, 2]) < 0)  # a larger rate at 8 iterations: closer
    assert np.all(cos[:, -1] > cos[:, 0] + 0.1)
    # to convergence: the same fixed point from every rate; its gap shrinks like pi
    conv = {}
    for pi in [1.0, 0.01, 0.001]:
        g = neuro.rule_gradients(
            neuro.PredictiveCoding(
                jnp.asarray(0.2), neuro.UntilConverged(1e-12), output_precision=jnp.asarray(pi)
            ),
            net,
            x,
            y,
        )
        conv[pi] = float(neuro.relative_error(g, ref))
    assert conv[1.0] == pytest.approx(rel[2, -1], rel=1e-3)  # 128 iterations at 0.2: settled
    assert 7 < conv[0.01] / conv[0.001] < 13
    assert conv[0.001] < 2e-3


def test_inference_descends_the_energy_and_converges(getkey):
    net, x, y = problem(getkey)
    s = neuro.infer(net, x, y, rate=0.1, inference=neuro.FixedIterations(60))
    assert s.energies.shape == (60,)
    assert np.all(np.diff(np.asarray(s.energies)) <= 1e-12)
    assert float(s.energies[-1]) < 0.9 * float(s.energies[0])
    c = neuro.infer(net, x, y, rate=0.1, inference=neuro.UntilConverged(1e-10, 5000, 10))
    assert bool(c.converged) and int(c.iterations) % 10 == 0 and 0 < int(c.iterations) < 5000
    grads = neuro.value_gradients(net, c.values)
    assert max(float(jnp.max(jnp.abs(g))) for g in grads) < 1e-9
    assert float(c.energies[-1]) <= float(s.energies[-1])
    with pytest.raises(Exception, match="did not converge"):
        neuro.infer(net, x, y, rate=0.1, inference=neuro.UntilConverged(1e-10, 20, 10))
    quiet = neuro.UntilConverged(1e-10, 20, 10, throw=False)
    assert not bool(neuro.infer(net, x, y, rate=0.1, inference=quiet).converged)
    with pytest.raises(Exception, match="non-finite"):
        neuro.infer(net, x, y, rate=50.0, inference=neuro.FixedIterations(200))


def test_inference_compiles_once(getkey):
    net, x, y = problem(getkey)
    rule = neuro.PredictiveCoding(0.1, neuro.FixedIterations(5))

    @eqx.debug.assert_max_traces(max_traces=1)
    def grads(net, x, y):
        return neuro.rule_gradients(rule, net, x, y)

    f = eqx.filter_jit(grads)
    for _ in range(3):
        f(net, x + 1.0, y)
        x = x * 0.5


def test_feedback_alignment_with_transposed_weights_is_backprop(getkey):
    net, x, y = problem(getkey)
    ref = jax.grad(neuro.mse_loss)(net, x, y)
    fa = neuro.FeedbackAlignment(net, key=getkey())
    assert [b.shape for b in fa.feedback] == [la.weight.shape for la in net.layers[1:]]
    g = neuro.rule_gradients(fa, net, x, y)
    assert float(neuro.cosine_similarity(g, ref)) < 0.99  # random feedback is not backprop
    fa = eqx.tree_at(lambda r: r.feedback, fa, tuple(la.weight for la in net.layers[1:]))
    assert float(neuro.relative_error(neuro.rule_gradients(fa, net, x, y), ref)) < 1e-13
    # DFA with one hidden layer and D = W_2 is backprop too
    net1, x1, y1 = problem(getkey, (6, 8, 4))
    dfa = neuro.DirectFeedbackAlignment(net1, key=getkey())
    assert dfa.feedback[0].shape == (4, 8)
    dfa = eqx.tree_at(lambda r: r.feedback, dfa, (net1.layers[1].weight,))
    ref1 = jax.grad(neuro.mse_loss)(net1, x1, y1)
    assert float(neuro.relative_error(neuro.rule_gradients(dfa, net1, x1, y1), ref1)) < 1e-13


def test_rule_loss_has_the_loss_value_and_the_rule_gradient(getkey):
    net, x, y = problem(getkey)
    rule = neuro.PredictiveCoding(0.1, neuro.FixedIterations(10))
    value, g = jax.value_and_grad(neuro.rule_loss, argnums=1)(rule, net, x, y)
    assert float(value) == pytest.approx(float(neuro.mse_loss(net, x, y)), rel=1e-14)
    assert_trees_close(g, neuro.rule_gradients(rule, net, x, y), 1e-15)
    with pytest.raises(TypeError, match="rule"):
        neuro.rule_gradients("pc", net, x, y)


def graph(getkey):
    W1 = jax.random.normal(getkey(), (6, 4))
    W2 = 0.5 * jax.random.normal(getkey(), (6, 6))
    W3 = jax.random.normal(getkey(), (3, 6))
    nodes = [
        neuro.Node(lambda p, x: jnp.tanh(p @ x), (0,), W1),  # vertex 2
        neuro.Node(lambda p, h: jnp.sin(p @ h) + h, (2,), W2),  # 3: residual
        neuro.Node(lambda p, h1, h2, z: p @ (h1 * h2) + z, (2, 3, 1), W3),  # 4: product, skip
        neuro.Node(lambda p, o: p["a"] * o + p["b"], (4,), {"a": jnp.array(0.7), "b": jnp.ones(3)}),
    ]
    return neuro.ComputationGraph(2, nodes)


def test_pc_on_a_computation_graph_equals_backprop(getkey):
    g = graph(getkey)
    x, z = jax.random.normal(getkey(), (4,)), jax.random.normal(getkey(), (3,))
    t = jnp.ones(3)
    loss = lambda o: jnp.sum((o - t) ** 2) + jnp.sum(jnp.sin(o))
    ref = eqx.filter_jit(jax.grad(lambda g: loss(g(x, z))))(g)
    exact = neuro.graph_pc_gradients(g, (x, z), loss)
    assert_trees_close(exact.gradients, ref, 1e-6)
    assert float(neuro.relative_error(exact.gradients, ref)) < 1e-13
    # the settled errors are the negative adjoints of the vertices
    vs = g.values(x, z)

    def from_vertex(v, i):
        vals = list(vs[:i]) + [v]
        for node in g.nodes[i - 1 :]:
            vals.append(node.fn(node.params, *(vals[p] for p in node.parents)))
        return loss(vals[-1])

    for i in (2, 3):
        np.testing.assert_allclose(
            exact.errors[i - 2], -jax.grad(from_vertex)(vs[i], i), atol=1e-12
        )
    slow = neuro.graph_pc_gradients(
        g, (x, z), loss, rate=0.3, inference=neuro.UntilConverged(1e-12)
    )
    assert float(neuro.relative_error(slow.gradients, ref)) < 1e-9
    short = neuro.graph_pc_gradients(g, (x, z), loss, inference=neuro.FixedIterations(1))
    assert float(neuro.relative_error(short.gradients, ref)) > 1e-3
    with pytest.raises(ValueError, match="earlier vertices"):
        neuro.ComputationGraph(1, [neuro.Node(lambda p, h: h, (1,), jnp.ones(()))])


def test_bad_arguments_are_named(unchecked, getkey):
    net, x, y = problem(getkey)
    with pytest.raises(ValueError, match="rate"):
        neuro.infer(net, x, y, rate=0.0)
    with pytest.raises(ValueError, match="output_precision"):
        neuro.infer(net, x, y, output_precision=-1.0)
    with pytest.raises(ValueError, match="x must have shape"):
        neuro.infer(net, x[:, :3], y)
    with pytest.raises(ValueError, match="y must have shape"):
        neuro.infer(net, x, y[:2])
    with pytest.raises(ValueError, match="iterations"):
        neuro.FixedIterations(-1)
    with pytest.raises(ValueError, match="tol"):
        neuro.UntilConverged(0.0)
    with pytest.raises(ValueError, match="check_every"):
        neuro.UntilConverged(1e-6, check_every=0)
