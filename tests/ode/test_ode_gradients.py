"""Gradients of `solve` for every solver and gradient mode: finite differences, BPTT
identities, the continuous adjoint's convergence, diffrax's adjoints."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from jax.test_util import check_grads
from ode_registry import (
    ALL_SOLVERS,
    LORENZ_ARGS,
    LORENZ_Y0,
    RK_Y0,
    lorenz,
    name,
    problem_for,
    rk_field,
)

import diffsim
from diffsim.ode import (
    RK4,
    ContinuousAdjoint,
    Dopri5,
    Euler,
    Leapfrog,
    ReversibleSolve,
    solve,
)

TS = np.linspace(0.0, 1.0, 4)  # three intervals of five steps: the nested path


def _loss_fn(f, y0, args, ts, grad, **kw):
    """A jitted scalar loss of the flattened (y0, args), weighting every saved state."""
    theta0, unravel = ravel_pytree((y0, args))

    @jax.jit
    def loss(theta):
        y0_, args_ = unravel(theta)
        ys = solve(f, y0_, ts, args_, grad=grad, **kw)
        leaves = jax.tree.leaves(ys)
        w = jnp.arange(1.0, len(ts) + 1.0)
        return sum(jnp.sum(w.reshape(-1, *[1] * (a.ndim - 1)) * jnp.sin(a)) for a in leaves)

    return loss, theta0


def _central_directional(loss, theta, v, eps=1e-6):
    return (loss(theta + eps * v) - loss(theta - eps * v)) / (2 * eps)


def _modes(solver):
    modes = [diffsim.Checkpointed(), diffsim.DiscreteAdjoint()]
    if isinstance(solver, Leapfrog) or type(solver).__name__ == "SymplecticEuler":
        modes.append(ReversibleSolve())
    return modes


# The strategies are solver-independent machinery: the first-and-second-order RK
# solvers run them in the slow tier only.
_MODE_SOLVERS = [
    s if name(s) in ("RK4", "Leapfrog") else pytest.param(s, marks=pytest.mark.slow)
    for s in ALL_SOLVERS
]


@pytest.mark.parametrize("solver", ALL_SOLVERS, ids=name)
def test_bptt_matches_finite_differences(solver, getkey):
    f, y0, args = problem_for(solver)
    loss, theta = _loss_fn(f, y0, args, TS, diffsim.BPTT(), solver=solver, dt=0.2 / 3)
    g_bptt = jax.grad(loss)(theta)
    for _ in range(2):
        v = jax.random.normal(getkey(), theta.shape)
        fd = _central_directional(loss, theta, v)
        assert abs(g_bptt @ v - fd) <= 1e-7 * (abs(fd) + 1), (g_bptt @ v, fd)


@pytest.mark.parametrize("solver", _MODE_SOLVERS, ids=name)
def test_exact_modes_equal_bptt(solver):
    f, y0, args = problem_for(solver)
    kw = dict(solver=solver, dt=0.2 / 3)
    loss, theta = _loss_fn(f, y0, args, TS, diffsim.BPTT(), **kw)
    g_bptt = jax.grad(loss)(theta)
    for mode in _modes(solver):
        loss_m, _ = _loss_fn(f, y0, args, TS, mode, **kw)
        assert loss_m(theta) == loss(theta)
        g = jax.grad(loss_m)(theta)
        # The reversible mode rebuilds states by running backwards: round-off only.
        tol = 1e-9 if isinstance(mode, ReversibleSolve) else 1e-10
        np.testing.assert_allclose(g, g_bptt, rtol=tol, atol=tol * np.abs(g_bptt).max())


@pytest.mark.parametrize(
    "n_ts, dt, mode",
    [
        (2, 0.05, diffsim.DiscreteAdjoint()),
        (11, 0.1, diffsim.DiscreteAdjoint()),
        pytest.param(2, 0.05, diffsim.Checkpointed(), marks=pytest.mark.slow),
        pytest.param(11, 0.1, diffsim.Checkpointed(), marks=pytest.mark.slow),
    ],
    ids=["one-interval-adjoint", "one-step-adjoint", "one-interval-ckpt", "one-step-ckpt"],
)
def test_single_interval_and_single_step_paths(n_ts, dt, mode):
    ts = np.linspace(0.0, 1.0, n_ts)
    loss, theta = _loss_fn(lorenz, LORENZ_Y0, LORENZ_ARGS, ts, diffsim.BPTT(), dt=dt)
    loss_m, _ = _loss_fn(lorenz, LORENZ_Y0, LORENZ_ARGS, ts, mode, dt=dt)
    np.testing.assert_allclose(jax.grad(loss_m)(theta), jax.grad(loss)(theta), rtol=1e-10)


def _rk_true_grad(k, T):
    """d/d(y0, k) of sum(y(T)) for the problem in ode_registry (closed form)."""
    a0, b0 = np.asarray(RK_Y0["a"]), float(RK_Y0["b"])
    ea, eb = np.exp(k * np.sin(T)), np.exp(k * (np.cos(T) - 1))
    return {"a": np.full_like(a0, ea), "b": eb}, (a0 * np.sin(T) * ea).sum() + b0 * (
        np.cos(T) - 1
    ) * eb


def _final_sum_grad(solver, grad, n_steps=None, **kw):
    def loss(y0, k):
        ys = solve(
            rk_field, y0, np.array([0.0, 1.0]), k, solver=solver, grad=grad, n_steps=n_steps, **kw
        )
        return jnp.sum(ys["a"][-1]) + ys["b"][-1]

    return jax.jit(jax.grad(loss, argnums=(0, 1)))(RK_Y0, jnp.array(0.7))


@pytest.mark.parametrize("solver", [Euler(), RK4(), Leapfrog()], ids=name)
def test_continuous_adjoint_converges_at_solver_order(solver):
    if isinstance(solver, Leapfrog):
        w0 = 1.3
        f = lambda t, y, w: (y[1], -(w**2) * y[0])

        def grads(n):
            loss = lambda w: solve(
                f,
                (1.0, 0.0),
                np.array([0.0, 1.0]),
                w,
                solver=solver,
                n_steps=n,
                grad=ContinuousAdjoint(),
            )[0][-1]
            return jax.jit(jax.grad(loss))(jnp.array(w0))

        true = -np.sin(w0)  # d/dw cos(w t) at t = 1
    else:

        def grads(n):
            return _final_sum_grad(solver, ContinuousAdjoint(), n_steps=n)[1]

        true = _rk_true_grad(0.7, 1.0)[1]
    ns = [16, 32, 64] if solver.order < 4 else [4, 8, 16]
    errs = [abs(float(grads(n)) - true) for n in ns]
    slope = np.polyfit(np.log(1.0 / np.array(ns)), np.log(errs), 1)[0]
    assert abs(slope - solver.order) < 0.2, (errs, slope)


@pytest.mark.parametrize(
    "extra",
    [
        [diffsim.DiscreteAdjoint()],
        pytest.param([diffsim.Checkpointed(), ContinuousAdjoint()], marks=pytest.mark.slow),
    ],
    ids=["discrete-adjoint", "checkpointed-continuous"],
)
def test_adaptive_gradients(extra):
    kw = dict(rtol=1e-10, atol=1e-10)
    (ga_true, gk_true) = _rk_true_grad(0.7, 1.0)
    results = {}
    for mode in [diffsim.BPTT(), *extra]:
        g_y0, g_k = _final_sum_grad(Dopri5(), mode, **kw)
        results[name(mode)] = (g_y0, g_k)
        # Every mode is within the tolerance of the true derivative...
        assert abs(float(g_k) - gk_true) < 1e-7 * abs(gk_true)
        np.testing.assert_allclose(g_y0["a"], ga_true["a"], rtol=1e-7)
        np.testing.assert_allclose(g_y0["b"], ga_true["b"], rtol=1e-7)
    # ...and the exact modes equal BPTT to round-off, in every entry of the gradient.
    for m in ["DiscreteAdjoint", "Checkpointed"]:
        if m not in results:
            continue
        (g_y0, g_k), (ref_y0, ref_k) = results[m], results["BPTT"]
        np.testing.assert_allclose(g_k, ref_k, rtol=1e-10)
        assert sorted(g_y0) == sorted(ref_y0) == ["a", "b"]
        for leaf in ("a", "b"):
            np.testing.assert_allclose(g_y0[leaf], ref_y0[leaf], rtol=1e-10, err_msg=leaf)


@pytest.mark.parametrize(
    "slow",
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["recursive-checkpoint", "backsolve"],
)
def test_lorenz_gradient_equals_diffrax_adjoints(slow):
    ts = np.array([0.0, 1.0])
    dt = 0.01

    def ours(args):
        return jnp.sum(
            solve(lorenz, LORENZ_Y0, ts, args, solver=RK4(), dt=dt, grad=diffsim.DiscreteAdjoint())[
                -1
            ]
        )

    from test_ode_solvers import _diffrax_rk4

    def theirs(args, adjoint):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lorenz),
            _diffrax_rk4(),
            0.0,
            1.0,
            dt,
            LORENZ_Y0,
            args=args,
            max_steps=200,
            adjoint=adjoint,
        )
        return jnp.sum(sol.ys[-1])

    g = jax.jit(jax.grad(ours))(LORENZ_ARGS)
    g_rc = jax.jit(jax.grad(lambda a: theirs(a, diffrax.RecursiveCheckpointAdjoint())))(LORENZ_ARGS)
    np.testing.assert_allclose(g, g_rc, rtol=1e-9)
    if not slow:
        return
    # The continuous adjoint is diffrax's BacksolveAdjoint: the same augmented system,
    # solver and steps. On chaotic Lorenz both differ from the exact gradient (here by
    # ~4e-3 relative at t = 1) because the state is rebuilt by integrating backwards.
    g_ca = jax.jit(
        jax.grad(
            lambda a: jnp.sum(solve(lorenz, LORENZ_Y0, ts, a, dt=dt, grad=ContinuousAdjoint())[-1])
        )
    )(LORENZ_ARGS)
    g_bs = jax.jit(jax.grad(lambda a: theirs(a, diffrax.BacksolveAdjoint())))(LORENZ_ARGS)
    np.testing.assert_allclose(g_ca, g_bs, rtol=1e-8)


class _MLPField(eqx.Module):
    mlp: eqx.nn.MLP

    def __call__(self, t, y, args):
        return self.mlp(y)


@pytest.mark.parametrize("with_discrete", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_neural_ode_gradients(getkey, with_discrete):
    field = _MLPField(eqx.nn.MLP(3, 3, 16, 2, activation=jnp.tanh, key=getkey()))
    y0 = jax.random.normal(getkey(), (5, 3))
    ts = np.linspace(0.0, 1.0, 3)

    def make(mode):
        @eqx.filter_jit
        def loss(field):
            batched = jax.vmap(lambda y: solve(field, y, ts, None, dt=0.1, grad=mode))
            return jnp.mean(batched(y0) ** 2)

        return loss

    g_bptt = eqx.filter_grad(make(diffsim.BPTT()))(field)
    flat = lambda g: ravel_pytree(eqx.filter(g, eqx.is_inexact_array))[0]
    if with_discrete:
        g_adj = eqx.filter_grad(make(diffsim.DiscreteAdjoint()))(field)
        np.testing.assert_allclose(flat(g_adj), flat(g_bptt), rtol=1e-10, atol=1e-14)
    g_cont = eqx.filter_grad(make(ContinuousAdjoint()))(field)
    err = np.abs(flat(g_cont) - flat(g_bptt)).max() / np.abs(flat(g_bptt)).max()
    assert err < 1e-4
    # Finite differences along a random direction in parameter space.
    params, static = eqx.partition(field, eqx.is_inexact_array)
    theta, unravel = ravel_pytree(params)
    loss = make(diffsim.BPTT())
    lf = jax.jit(lambda th: loss(eqx.combine(unravel(th), static)))
    v = jax.random.normal(getkey(), theta.shape)
    fd = _central_directional(lf, theta, v)
    assert abs(flat(g_bptt) @ v - fd) < 1e-7 * (abs(fd) + 1)


class _BatchField(eqx.Module):
    """An MLP field applied to a batch of states: the neural ODE of bench_ode.py, small."""

    mlp: eqx.nn.MLP

    def __call__(self, t, y, args):
        return jax.vmap(self.mlp)(y)


def _batch_node(getkey, batch, width):
    field = _BatchField(eqx.nn.MLP(4, 4, width, 2, activation=jnp.tanh, key=getkey()))
    return field, jax.random.normal(getkey(), (batch, 4))


def _node_loss(field, y0, grad, remat, n=12):
    ts = jnp.array([0.0, 0.5])
    ys = solve(field, y0, ts, None, solver=RK4(), n_steps=n, grad=grad, remat_stages=remat)
    return jnp.mean(jnp.sin(ys[-1]) ** 2)


def test_bounded_memory_neural_ode_gradient_is_exact(getkey):
    """Checkpointed(inner=DiscreteAdjoint()) with rematerialised stages equals jax.grad of
    the plain solve (BPTT) to round-off, and finite differences."""
    field, y0 = _batch_node(getkey, batch=6, width=8)
    params, static = eqx.partition(field, eqx.is_inexact_array)
    lossf = lambda p, grad, remat: _node_loss(eqx.combine(p, static), y0, grad, remat)
    ref = jax.jit(jax.grad(lambda p: lossf(p, diffsim.BPTT(), False)))(params)
    flat = lambda g: ravel_pytree(g)[0]
    mode = diffsim.Checkpointed(segments=3, inner=diffsim.DiscreteAdjoint())
    got = jax.jit(jax.grad(lambda p: lossf(p, mode, True)))(params)
    np.testing.assert_allclose(flat(got), flat(ref), rtol=1e-10, atol=1e-14)
    # Finite differences through the same composition on a plain closure over traced arrays
    # (the remat wrapper closure-converts it), with respect to args and y0.
    w = jnp.array([0.3, -0.7])
    f = lambda t, y, a: -a[0] * y + jnp.tanh(w[1] * y)

    def closure_loss(a, y0):
        ys = solve(f, y0, jnp.array([0.0, 1.0]), a, n_steps=6, grad=mode, remat_stages=True)
        return jnp.sum(ys[-1])

    args = (jnp.array([0.9]), jnp.array([1.0, 2.0]))
    check_grads(closure_loss, args, order=1, modes=["rev"], eps=1e-6)


@pytest.mark.slow
def test_bounded_memory_neural_ode_working_memory(getkey):
    """The activations of one step's stages are what DiscreteAdjoint keeps beyond the states;
    remat_stages keeps one stage's, Checkpointed(inner=...) stores sqrt(T) states: the
    composition needs far less working memory than either alone."""
    field, y0 = _batch_node(getkey, batch=64, width=64)
    params, static = eqx.partition(field, eqx.is_inexact_array)

    def mem(grad, remat, n=64):
        g = jax.grad(lambda p: _node_loss(eqx.combine(p, static), y0, grad, remat, n))
        return diffsim.memory_usage(g, params).working

    adjoint = mem(diffsim.DiscreteAdjoint(), False)
    remat = mem(diffsim.DiscreteAdjoint(), True)
    both = mem(diffsim.Checkpointed(segments=8, inner=diffsim.DiscreteAdjoint()), True)
    # One stage's activations: 2 hidden layers x 64 x 64 doubles = 64 KB; a state 2 KB.
    # Measured (jax 0.10.2, CPU): 472 KB, 392 KB, 337 KB.
    assert remat < adjoint - 60_000, (adjoint, remat)
    assert both < remat - 40_000, (remat, both)
    assert both < 0.8 * adjoint, (adjoint, both)
