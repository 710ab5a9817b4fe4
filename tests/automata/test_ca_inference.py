"""Rule inference: gradients against finite differences, table read-out, recovery."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffsim.automata import (
    LIFE,
    ElementaryRule,
    LocalRuleNet,
    compare_tables,
    configuration_index,
    configurations,
    elementary_data,
    flip_cells,
    life_data,
    life_step,
    neighborhoods,
    observed_configurations,
    parse_rule,
    reported_table,
    rollout_logits,
    rule_inference_loss,
    true_table,
)


def _train(models, data, steps, lr, k=1):
    """Adam on a stack of independent models (one per rule), all in one compiled program."""
    params, static = eqx.partition(models, eqx.is_inexact_array)
    opt = optax.adam(lr)
    state = opt.init(params)

    def loss(p):
        m = eqx.combine(p, static)
        return jnp.sum(eqx.filter_vmap(lambda mm, f: rule_inference_loss(mm, f, k=k))(m, data))

    @jax.jit
    def run(params, state):
        def body(carry, _):
            p, s = carry
            g = jax.grad(loss)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (params, state), _ = jax.lax.scan(body, (params, state), None, length=steps)
        return params

    return eqx.combine(run(params, state), static)


def test_neighbourhood_index_is_wolfram_order():
    row = jnp.array([1, 0, 1, 1, 0, 0, 1, 0])
    idx = configuration_index(neighborhoods(row, 1))
    l, r = jnp.roll(row, 1), jnp.roll(row, -1)
    np.testing.assert_array_equal(idx, 4 * l + 2 * row + r)
    np.testing.assert_array_equal(configuration_index(configurations(2)), np.arange(512))


def test_true_table_reproduces_the_simulator(getkey):
    grid = jax.random.bernoulli(getkey(), 0.5, (16, 16)).astype(jnp.int32)
    index = jax.jit(lambda g, d: configuration_index(neighborhoods(g, d)), static_argnums=1)
    for rule in (LIFE, parse_rule("B36/S125")):
        via_table = true_table(rule)[index(grid, 2)]
        np.testing.assert_array_equal(via_table, life_step(rule, grid))
    row = jax.random.bernoulli(getkey(), 0.5, (20,)).astype(jnp.int32)
    from diffsim.automata import elementary_step

    tab = true_table(ElementaryRule(110))
    np.testing.assert_array_equal(tab[index(row, 1)], elementary_step(110, row))


def test_loss_gradient_matches_finite_differences(getkey):
    dims, k = 2, 2  # the 2D network, backpropagated through a 2-step rollout
    model = LocalRuleNet(dims, 3, 3, key=getkey(), dtype=jnp.float64)
    shape = (4, 9) if dims == 1 else (3, 5, 5)
    frames = jax.random.bernoulli(getkey(), 0.5, shape).astype(jnp.float64)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def f(v):
        return rule_inference_loss(eqx.combine(unravel(v), static), frames, k=k)

    g = jax.jit(jax.grad(f))(flat)
    eps = 1e-6
    central = jax.jit(jax.vmap(lambda e: (f(flat + eps * e) - f(flat - eps * e)) / (2 * eps)))
    fd = central(jnp.eye(flat.size, dtype=flat.dtype))
    np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-6, atol=1e-9)


def test_table_reads_the_network():
    model = LocalRuleNet(1, 4, 4, key=jax.random.key(0))
    row = jnp.array([0, 1, 1, 0, 1, 0, 0, 0])

    @eqx.filter_jit
    def pieces(model, row):
        return (
            model.table(),
            model.patch_logits(configurations(1)),
            model.logits(row),
            configuration_index(neighborhoods(row, 1)),
            rollout_logits(model, row, 1),
        )

    table, logits, row_logits, index, rolled = pieces(model, row)
    np.testing.assert_array_equal(table, (logits > 0).astype(int))
    # table() evaluates the same function the soft automaton applies to 0/1 states
    np.testing.assert_array_equal((row_logits > 0).astype(int), table[index])
    np.testing.assert_allclose(rolled, row_logits, rtol=1e-6)


@pytest.mark.slow
def test_elementary_rules_recovered_exactly():
    numbers = [30, 90, 110, 184, 54, 22]
    tables = jnp.stack([ElementaryRule(n).table for n in numbers])
    keys = jax.random.split(jax.random.key(0), len(numbers))
    data = jax.vmap(lambda t, k: elementary_data(t, width=128, frames=4, key=k))(tables, keys)
    models = eqx.filter_vmap(lambda k: LocalRuleNet(1, 8, 16, key=k))(
        jax.random.split(jax.random.key(1), len(numbers))
    )
    untrained = eqx.filter_vmap(lambda m: m.table())(models)
    trained = _train(models, data.astype(jnp.float32), 150, 3e-2)
    learned = eqx.filter_vmap(lambda m: m.table())(trained)
    observed = jax.vmap(lambda f: observed_configurations(f, 1))(data)
    assert bool(observed.all())
    assert not bool(jnp.all(untrained == tables))
    for i, n in enumerate(numbers):
        report = compare_tables(learned[i], tables[i], observed[i])
        assert report["exact"] and report["correct"] == 8, (n, learned[i], tables[i])


def test_unobserved_configurations_are_reported_not_guessed():
    # Rule 0 from an all-zero row: only configuration 000 is ever seen.
    data = elementary_data(0, width=16, frames=3, key=jax.random.key(0), density=0.0)
    observed = observed_configurations(data, 1)
    np.testing.assert_array_equal(observed, [True] + [False] * 7)
    learned = jnp.array([0, 1, 1, 0, 1, 0, 0, 1])
    report = compare_tables(learned, ElementaryRule(0).table, observed)
    assert report == {"correct": 1, "wrong": 0, "unidentifiable": 7, "exact": True}
    np.testing.assert_array_equal(reported_table(learned, observed), [0] + [-1] * 7)
    # min_count: a configuration seen fewer times than that is not identifiable either.
    row = jnp.array([[0, 0, 0, 0, 0, 1, 1, 0], [0] * 8])
    counts = jnp.bincount(configuration_index(neighborhoods(row[0], 1)), length=8)
    for m in (1, 2, 3):
        np.testing.assert_array_equal(observed_configurations(row, 1, min_count=m), counts >= m)


@pytest.mark.slow
def test_life_like_rules_recovered_with_noise(getkey):
    rules = [LIFE, parse_rule("B36/S23")]
    data = jnp.stack(
        [life_data(r, size=64, frames=20, key=k) for r, k in zip(rules, jax.random.split(getkey()))]
    )
    noisy = flip_cells(data, 0.01, key=getkey())
    assert 0.005 < float(jnp.mean(noisy != data)) < 0.015
    models = eqx.filter_vmap(lambda k: LocalRuleNet(2, 16, 16, key=k))(
        jax.random.split(getkey(), len(rules))
    )
    trained = _train(models, noisy.astype(jnp.float32), 600, 1e-2)
    for i, rule in enumerate(rules):
        observed = observed_configurations(noisy[i], 2, min_count=5)
        report = compare_tables(_index(trained, i).table(), true_table(rule), observed)
        assert report["exact"], (str(rule), report)


def _index(stacked, i):
    return jax.tree.map(lambda a: a[i] if eqx.is_array(a) else a, stacked)


def test_bad_inputs(unchecked):
    with pytest.raises(ValueError, match="dims"):
        LocalRuleNet(3, key=jax.random.key(0))
    model = LocalRuleNet(1, 2, 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="frames"):
        rule_inference_loss(model, jnp.zeros((1, 8)))
    with pytest.raises(ValueError, match="k must be"):
        rule_inference_loss(model, jnp.zeros((3, 8)), k=0)
    with pytest.raises(ValueError, match="rate"):
        flip_cells(jnp.zeros(3), 1.5, key=jax.random.key(0))
