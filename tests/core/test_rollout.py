"""The rollout core: every gradient strategy against BPTT, finite differences, memory."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import diffsim as ds

STRATEGIES = {
    "bptt": ds.BPTT(),
    "checkpointed": ds.Checkpointed(),
    "checkpointed3": ds.Checkpointed(levels=3),
    "checkpointed_segments": ds.Checkpointed(segments=7),
    "adjoint": ds.DiscreteAdjoint(),
}


def _rnn_step(params):
    W, b = params

    def step(h, x):
        h = h + 0.1 * jnp.tanh(W @ h + x + b)
        return h, jnp.sum(jnp.sin(h))

    return step


def _rnn_objective(h_T, outs):
    return jnp.sum(h_T**2) + jnp.sum(outs * jnp.linspace(0.0, 1.0, outs.shape[0]))


def rnn_loss(params, h0, xs, grad):
    h_T, outs = ds.rollout(_rnn_step(params), h0, xs, grad=grad)
    return _rnn_objective(h_T, outs)


def reference_loss(params, h0, xs):
    """The same loss through a plain `lax.scan`, not through `ds.rollout`: the reference
    every strategy (BPTT included) is checked against."""
    return _rnn_objective(*jax.lax.scan(_rnn_step(params), h0, xs))


@pytest.fixture
def problem(getkey):
    W = 0.5 * jax.random.normal(getkey(), (5, 5))
    b = jax.random.normal(getkey(), (5,))
    h0 = jax.random.normal(getkey(), (5,))
    xs = jax.random.normal(getkey(), (53, 5))  # 53: not a multiple of any segment count
    return (W, b), h0, xs


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_forward_identical(problem, name):
    params, h0, xs = problem
    ref = reference_loss(params, h0, xs)
    assert rnn_loss(params, h0, xs, STRATEGIES[name]) == ref


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_gradient_equals_bptt(problem, name):
    """Every strategy, BPTT included, against jax.grad of a plain lax.scan."""
    params, h0, xs = problem
    ref = jax.grad(reference_loss, argnums=(0, 1, 2))(params, h0, xs)
    got = jax.grad(rnn_loss, argnums=(0, 1, 2))(params, h0, xs, STRATEGIES[name])
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", ["bptt", "checkpointed", "adjoint"])
def test_gradient_finite_differences(problem, name):
    params, h0, xs = problem
    f = lambda W, h0: rnn_loss((W, params[1]), h0, xs[:12], STRATEGIES[name])
    check_grads(f, (params[0], h0), order=1, modes=["rev"], eps=1e-6, atol=1e-7, rtol=1e-7)


def test_checkpointed_inner_adjoint_equals_grad(problem):
    """Checkpointed segments differentiated by the costate recursion: the same loss, and the
    gradient of a plain lax.scan (finite differences: tests/ode, the neural ODE)."""
    params, h0, xs = problem
    mode = ds.Checkpointed(segments=7, inner=ds.DiscreteAdjoint())
    loss = jax.jit(lambda p, h, x: rnn_loss(p, h, x, mode))
    np.testing.assert_allclose(loss(params, h0, xs), reference_loss(params, h0, xs), rtol=1e-13)
    ref = jax.grad(reference_loss, argnums=(0, 1, 2))(params, h0, xs)
    got = jax.grad(loss, argnums=(0, 1, 2))(params, h0, xs)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_pytree_state_and_int_leaves(getkey):
    """Pytree states with integer leaves (counters) and no xs work in every strategy."""
    k = jnp.asarray(0.7)

    def loss(k, grad):
        def step(state, _):
            (q, p), n = state
            p = p - 0.1 * k * q
            q = q + 0.1 * p
            return ((q, p), n + 1), q[0]

        state0 = ((jnp.ones(2), jnp.zeros(2)), 0)
        if grad is None:  # the reference: a plain lax.scan
            ((q, p), n), qs = jax.lax.scan(step, state0, None, length=20)
        else:
            ((q, p), n), qs = ds.rollout(step, state0, length=20, grad=grad)
        assert jnp.asarray(n).dtype.kind == "i"
        return jnp.sum(q) + jnp.sum(qs) + 0.0 * n

    ref = jax.grad(loss)(k, None)
    for name, strategy in STRATEGIES.items():
        np.testing.assert_allclose(jax.grad(loss)(k, strategy), ref, rtol=1e-12, err_msg=name)


def _leapfrog(k, dt):
    def step(s, _):
        q, p = s
        p = p - 0.5 * dt * k * q
        q = q + dt * p
        p = p - 0.5 * dt * k * q
        return (q, p), q

    def inverse(s, _):
        q, p = s
        p = p + 0.5 * dt * k * q
        q = q - dt * p
        p = p + 0.5 * dt * k * q
        return (q, p)

    return step, inverse


def test_reversible_equals_bptt():
    def loss(k, q0, reversible):
        step, inverse = _leapfrog(k, 0.01)
        grad = ds.Reversible(inverse) if reversible else ds.BPTT()
        (q, p), qs = ds.rollout(step, (q0, jnp.zeros_like(q0)), length=1000, grad=grad)
        return jnp.sum(q**2 + p) + jnp.mean(qs**2)

    q0 = jnp.array([1.0, -0.5, 0.25])
    ref = jax.grad(loss, argnums=(0, 1))(2.0, q0, False)
    got = jax.grad(loss, argnums=(0, 1))(2.0, q0, True)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_reversible_memory_is_constant():
    def grad_fn(T):
        step, inverse = _leapfrog(2.0, 0.01)
        f = lambda q0: jnp.sum(
            ds.rollout(
                lambda s, x: (step(s, x)[0], None), (q0, q0), length=T, grad=ds.Reversible(inverse)
            )[0][0]
        )
        return ds.memory_usage(jax.grad(f), jnp.ones(16)).temp

    assert grad_fn(10_000) == grad_fn(100)


def test_checkpointed_memory_sublinear():
    """Peak working memory: BPTT grows linearly in T, Checkpointed like sqrt(T)."""

    def mem(T, grad):
        xs = jnp.zeros((T, 32))
        f = lambda h: jnp.sum(ds.rollout(lambda h, x: (jnp.tanh(h + x), None), h, xs, grad=grad)[0])
        return ds.memory_usage(jax.grad(f), jnp.ones(32)).temp

    b1, b2 = mem(1_000, ds.BPTT()), mem(16_000, ds.BPTT())
    c1, c2 = mem(1_000, ds.Checkpointed()), mem(16_000, ds.Checkpointed())
    assert b2 / b1 > 12  # ~16x: linear
    assert c2 / c1 < 6  # ~4x: sqrt
    assert c2 < b2 / 20


def test_checkpointed_memory_sublinear_with_unrolled_loops(monkeypatch):
    """The GPU failure reproduced on the CPU: with the loops over segments unrolled (as
    XLA's GPU pipeline may do), a compiler can hoist every segment's recomputation ahead of
    the backward pass (jax.checkpoint in a scan then took 1.25 MB at T = 1600, more than
    BPTT, and 4x the memory for 4x T); the recomputation is tied to the cotangent, so memory
    stays O(sqrt T)."""
    import diffsim._rollout as core

    monkeypatch.setattr(core, "_UNROLL_SEGMENTS", True)

    def mem(T, grad):
        xs = jnp.zeros((T, 32))
        f = lambda h: jnp.sum(ds.rollout(lambda h, x: (jnp.tanh(h + x), None), h, xs, grad=grad)[0])
        return ds.memory_usage(jax.grad(f), jnp.ones(32)).temp

    c1, c2 = mem(256, ds.Checkpointed()), mem(1024, ds.Checkpointed())
    assert c2 / c1 < 3  # ~2x: sqrt (4x when hoisted)
    assert c2 < mem(1024, ds.BPTT()) / 5


def test_costates_equal_grad(problem):
    (W, b), h0, xs = problem

    def step(h, x):
        return h + 0.1 * jnp.tanh(W @ h + x + b), jnp.sum(h**2)

    def loss(h0, xs):
        h_T, outs = ds.rollout(step, h0, xs)
        return jnp.sum(jnp.cos(h_T)) + jnp.sum(outs)

    h_T, _ = ds.rollout(step, h0, xs)
    lambdas, _, g_xs = ds.costates(
        step, h0, xs, final_cotangent=-jnp.sin(h_T), out_cotangents=jnp.ones(xs.shape[0])
    )
    g_h0, g_xs_ref = jax.grad(loss, argnums=(0, 1))(h0, xs)
    np.testing.assert_allclose(lambdas[0], g_h0, rtol=1e-12)
    np.testing.assert_allclose(g_xs, g_xs_ref, rtol=1e-12, atol=1e-15)
    # lambda_t is the gradient with respect to the state at time t: check one midway.
    t = 20
    h_t, _ = ds.rollout(step, h0, xs[:t])
    tail = lambda h: (lambda hT, outs: jnp.sum(jnp.cos(hT)) + jnp.sum(outs))(
        *ds.rollout(step, h, xs[t:])
    )
    np.testing.assert_allclose(lambdas[t], jax.grad(tail)(h_t), rtol=1e-12)
    assert lambdas.shape == (xs.shape[0] + 1, 5)


def test_equinox_module_step_parameters(getkey):
    """Gradients reach the parameters of an equinox module closed over by the step."""
    cell = eqx.nn.GRUCell(3, 4, key=getkey())
    xs = jax.random.normal(getkey(), (15, 3))

    @eqx.filter_grad
    def g(cell, grad):
        return jnp.sum(ds.rollout(lambda h, x: (cell(x, h), None), jnp.zeros(4), xs, grad=grad)[0])

    ref = g(cell, ds.BPTT())
    for strategy in [ds.Checkpointed(), ds.DiscreteAdjoint()]:
        got = g(cell, strategy)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_jit_vmap_no_retrace(getkey):
    xs = jax.random.normal(getkey(), (10, 3))

    @eqx.debug.assert_max_traces(max_traces=1)
    def f(h0):
        return jnp.sum(
            ds.rollout(lambda h, x: (jnp.tanh(h + x), None), h0, xs, grad=ds.DiscreteAdjoint())[0]
        )

    g = jax.jit(jax.vmap(jax.grad(f)))
    a = g(jnp.ones((4, 3)))
    b = g(jnp.zeros((4, 3)))
    assert a.shape == b.shape == (4, 3)


def test_bad_input(unchecked):
    step = lambda s, x: (s, None)
    with pytest.raises(ValueError, match="length"):
        ds.rollout(step, jnp.zeros(2))
    with pytest.raises(ValueError, match="disagree"):
        ds.rollout(step, jnp.zeros(2), (jnp.zeros(3), jnp.zeros(4)))
    with pytest.raises(ValueError, match="length=5"):
        ds.rollout(step, jnp.zeros(2), jnp.zeros(3), length=5)
    with pytest.raises(TypeError, match="gradient strategy"):
        ds.rollout(step, jnp.zeros(2), length=3, grad="bptt")
    with pytest.raises(ValueError, match="levels"):
        ds.Checkpointed(levels=0)
    with pytest.raises(ValueError, match="inner"):
        ds.Checkpointed(inner="adjoint")


@pytest.mark.parametrize("name", ["adjoint", "checkpointed"])
def test_integer_tracer_leaves_and_key_inputs(name):
    """Integer state leaves computed under jax.grad (neighbour indices) and PRNG keys as
    inputs carry no derivative and do not upset the custom VJPs."""

    def loss(x, grad):
        idx = jnp.argsort(x)  # an integer tracer of the grad trace

        def step(s, k):
            v, i = s
            return (v * x[i[0]] + 0.1 * jax.random.normal(k, v.shape), i), None

        keys = jax.random.split(jax.random.key(0), 5)
        (v, _), _ = ds.rollout(step, (jnp.ones(2), idx), keys, grad=grad)
        return jnp.sum(v)

    x = jnp.array([0.5, 0.2, 0.9])
    np.testing.assert_allclose(
        jax.grad(loss)(x, STRATEGIES[name]), jax.grad(loss)(x, ds.BPTT()), rtol=1e-12
    )


@pytest.mark.parametrize("k", [1, 7, 10, 53, 100])
def test_truncated_equals_blockwise_stop_gradient(problem, k):
    """Truncated(k) equals a hand-written TBPTT: stop_gradient on the state every k steps."""
    params, h0, xs = problem

    def reference(params, h0, xs):
        W, b = params
        h, total = h0, 0.0
        for t in range(xs.shape[0]):
            if t % k == 0 and t > 0:
                h = jax.lax.stop_gradient(h)
            h = h + 0.1 * jnp.tanh(W @ h + xs[t] + b)
            total = total + jnp.sum(jnp.sin(h)) * jnp.linspace(0.0, 1.0, xs.shape[0])[t]
        return jnp.sum(h**2) + total

    grad = jax.grad(rnn_loss, argnums=(0, 1, 2))
    got = grad(params, h0, xs, ds.Truncated(k))
    ref = jax.grad(reference, argnums=(0, 1, 2))(params, h0, xs)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    assert float(rnn_loss(params, h0, xs, ds.Truncated(k))) == pytest.approx(
        float(rnn_loss(params, h0, xs, ds.BPTT())), rel=1e-14
    )
    if k >= xs.shape[0]:  # one block: exactly BPTT
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(grad(params, h0, xs, ds.BPTT()))):
            np.testing.assert_allclose(a, b, rtol=1e-12)
    else:  # the initial state only influences the first block
        assert not np.allclose(np.asarray(got[1]), np.asarray(grad(params, h0, xs, ds.BPTT())[1]))
    with pytest.raises(ValueError, match="length"):
        ds.Truncated(0)


def test_forward_sensitivity_equals_grad(problem):
    """Forward-mode sensitivities: parameters and h0 (outputs used too) against jax.grad."""
    params, h0, xs = problem
    ref = jax.grad(reference_loss, argnums=(0, 1))(params, h0, xs)
    loss = jax.jit(lambda p, h: rnn_loss(p, h, xs, ds.ForwardSensitivity()))
    got = jax.grad(loss, argnums=(0, 1))(params, h0)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    # Only W differentiated (h0 gets no sensitivity columns), against finite differences.
    f = jax.jit(lambda W: rnn_loss((W, params[1]), h0, xs[:12], ds.ForwardSensitivity()))
    check_grads(f, (params[0],), order=1, modes=["rev"], eps=1e-6, atol=1e-7, rtol=1e-7)


def test_forward_sensitivity_pytree_int_leaves_and_ode():
    """Integer counters in the state, a Lorenz RK4 solve through diffsim.ode; O(1) memory."""
    from diffsim.ode import RK4, solve

    lorenz = lambda t, y, a: jnp.stack(
        [a[0] * (y[1] - y[0]), y[0] * (a[1] - y[2]) - y[1], y[0] * y[1] - a[2] * y[2]]
    )
    args = jnp.array([10.0, 28.0, 8.0 / 3.0])
    ts = jnp.linspace(0.0, 0.5, 3)

    def loss(a, y0, grad, n=100):
        return jnp.sum(solve(lorenz, y0, ts, a, solver=RK4(), n_steps=n, grad=grad) ** 2)

    ref = jax.grad(loss, argnums=(0, 1))(args, jnp.ones(3), ds.BPTT())
    got = jax.grad(loss, argnums=(0, 1))(args, jnp.ones(3), ds.ForwardSensitivity())
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    mem = lambda n: (
        ds.memory_usage(
            jax.grad(lambda a: loss(a, jnp.ones(3), ds.ForwardSensitivity(), n)), args
        ).temp
    )
    assert mem(5_000) == mem(50) < 4_000


def test_forward_sensitivity_refuses_xs_gradients(problem):
    params, h0, xs = problem
    with pytest.raises(ValueError, match="ForwardSensitivity.*xs"):
        jax.grad(rnn_loss, argnums=2)(params, h0, xs, ds.ForwardSensitivity())
