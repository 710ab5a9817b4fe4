"""Stiff solves (Kvaerno5 against scipy's Radau), events (analytic bounce times, spike-time
and pendulum gradients against finite differences), dense output (its measured order)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import diffsim
from diffsim.ode import (
    ContinuousAdjoint,
    Dopri5,
    Event,
    Kvaerno5,
    Solution,
    implicit_root,
    solve,
)

G = 9.81


def robertson(t, y, k):
    a, b, c = k[0], k[1], k[2]
    return jnp.stack(
        [
            -a * y[0] + c * y[1] * y[2],
            a * y[0] - b * y[1] ** 2 - c * y[1] * y[2],
            b * y[1] ** 2,
        ]
    )


def robertson_np(t, y, k):
    return np.array(
        [
            -k[0] * y[0] + k[2] * y[1] * y[2],
            k[0] * y[0] - k[1] * y[1] ** 2 - k[2] * y[1] * y[2],
            k[1] * y[1] ** 2,
        ]
    )


def robertson_jac(t, y, k):
    return np.array(
        [
            [-k[0], k[2] * y[2], k[2] * y[1]],
            [k[0], -2 * k[1] * y[1] - k[2] * y[2], -k[2] * y[1]],
            [0.0, 2 * k[1] * y[1], 0.0],
        ]
    )


K_ROB = np.array([0.04, 3e7, 1e4])
Y0_ROB = np.array([1.0, 0.0, 0.0])


def _radau(fun, y0, ts, args, jac, rtol=1e-12, atol=1e-20):
    """scipy's Radau on the numpy field `fun(t, y, args)` with the analytic Jacobian."""
    return solve_ivp(
        lambda t, y: fun(t, y, args),
        (ts[0], ts[-1]),
        y0,
        method="Radau",
        t_eval=ts,
        rtol=rtol,
        atol=atol,
        jac=lambda t, y: jac(t, y, args),
    )


def test_kvaerno5_local_order():
    """One step's error falls like dt^6 (order 5), on a non-autonomous nonlinear field."""
    f = lambda t, y, k: k * jnp.cos(t) * y + 0.1 * y**2
    ref = solve_ivp(
        lambda t, y: 0.7 * np.cos(t) * y + 0.1 * y**2,
        (0.0, 0.2),
        [1.0],
        method="DOP853",
        rtol=1e-14,
        atol=1e-14,
        dense_output=True,
    )
    step = jax.jit(lambda dt: Kvaerno5(newton_tol=1e-8).step(f, 0.0, jnp.array([1.0]), 0.7, dt))
    dts = np.array([0.2, 0.1, 0.05])
    errs = np.array([abs(float(step(dt)[0]) - ref.sol(dt)[0]) for dt in dts])
    orders = np.log2(errs[:-1] / errs[1:])
    assert np.all(orders > 5.5), orders


def test_robertson_against_radau():
    ts = np.array([0.0, 1e-2, 1.0, 1e2, 1e4, 1e5])
    sol = solve(
        robertson,
        jnp.asarray(Y0_ROB),
        jnp.asarray(ts),
        jnp.asarray(K_ROB),
        solver=Kvaerno5(),
        rtol=1e-8,
        atol=1e-14,
        max_steps=1000,
        solution=True,
    )
    assert isinstance(sol, Solution)
    ref = _radau(robertson_np, Y0_ROB, ts, K_ROB, robertson_jac)
    rel = np.abs(np.asarray(sol.ys) - ref.y.T) / (np.abs(ref.y.T) + 1e-30)
    assert rel[1:].max() < 1e-6, rel
    # mass is conserved by every Runge-Kutta step (a linear invariant)
    assert np.abs(np.asarray(sol.ys).sum(1) - 1).max() < 1e-12
    assert 100 < int(sol.accepted) < 600 and int(sol.njev) == int(sol.accepted + sol.rejected)


def test_robertson_rate_gradients_against_finite_differences():
    ts = jnp.array([0.0, 40.0])

    @jax.jit
    def final(logk):
        ys = solve(
            robertson,
            jnp.asarray(Y0_ROB),
            ts,
            jnp.exp(logk),
            solver=Kvaerno5(newton_tol=1e-4),
            rtol=1e-10,
            atol=1e-16,
            max_steps=2000,
        )
        return ys[-1]

    logk = jnp.log(jnp.asarray(K_ROB))
    jac = jax.jacrev(final)(logk)
    eps = 1e-4
    fd = jnp.stack(
        [(final(logk + eps * e) - final(logk - eps * e)) / (2 * eps) for e in jnp.eye(3)], 1
    )
    scale = np.abs(np.asarray(fd)).max(1, keepdims=True)
    assert np.abs(np.asarray(jac - fd) / scale).max() < 1e-5, (jac, fd)


def test_implicit_root_gradient_is_the_implicit_function_theorem():
    # z^3 + a z - b = 0: dz/da = -z / (3 z^2 + a), dz/db = 1 / (3 z^2 + a)
    def newton(residual, z0, data):
        z = z0
        for _ in range(30):
            z = z - residual(z) / jax.grad(residual)(z)
        return z, None

    def root(p):
        a, b = p
        return implicit_root(lambda z: z**3 + a * z - b, jnp.asarray(1.0), newton)[0]

    p = jnp.array([2.0, 3.0])
    z = root(p)
    want = jnp.array([-z, 1.0]) / (3 * z**2 + p[0])
    np.testing.assert_allclose(jax.grad(root)(p), want, rtol=1e-12)


# --- events ------------------------------------------------------------------------


def _ball(p, solver, t_end=5.15):
    h0, e = p[0], p[1]
    ev = Event(
        lambda t, y, a: y[0],
        jump=lambda t, y, a: jnp.stack([y[0], -a * y[1]]),
        direction=-1,
        max_events=12,
    )
    field = lambda t, y, a: jnp.stack([y[1], -G * jnp.ones_like(y[0])])
    return solve(
        field,
        jnp.stack([h0, jnp.zeros_like(h0)]),
        jnp.array([0.0, t_end]),
        e,
        solver=solver,
        event=ev,
        rtol=1e-8,
        atol=1e-10,
        max_steps=200,
    )


def ball_analytic(p, n=10):
    h0, e = p[0], p[1]
    v1, t1 = jnp.sqrt(2 * G * h0), jnp.sqrt(2 * h0 / G)
    k = jnp.arange(n)
    return jnp.cumsum(jnp.where(k == 0, t1, 2 * e**k * v1 / G))


# Slow tier (default tier under 10 min). The default tier keeps the implicit-function-
# theorem gradient that event times use (test_implicit_root_gradient_is_...).
@pytest.mark.slow
@pytest.mark.parametrize("solver", [Dopri5(), Kvaerno5()], ids=["Dopri5", "Kvaerno5"])
def test_bouncing_ball_times_and_gradients_are_analytic(solver):
    p = jnp.array([2.0, 0.8])
    times = jax.jit(lambda p: _ball(p, solver).t_events[:10])
    sol = _ball(p, solver)
    assert int(sol.n_events) == 10 and not bool(sol.terminated)
    np.testing.assert_allclose(times(p), ball_analytic(p), rtol=0, atol=1e-12)
    jac = jax.jacrev(times)(p)  # d t_k / d (drop height, restitution)
    np.testing.assert_allclose(jac, jax.jacobian(ball_analytic)(p), rtol=1e-10, atol=1e-11)
    # after the last bounce the ball flies freely: its state at t_end is analytic too
    t10 = ball_analytic(p)[-1]
    v = G * ball_analytic(p)[0] * p[1] ** 10
    dt = 5.15 - t10
    np.testing.assert_allclose(sol.ys[-1], [v * dt - G * dt**2 / 2, v - G * dt], atol=1e-11)


def _lif(p, t_end=3.5):
    """Leaky integrate-and-fire: tau v' = -v + I0 (1 + 0.5 sin(omega t)); spike at v = 1,
    reset to 0. Gives the spike times."""
    tau, i0, omega = p[0], p[1], p[2]
    field = lambda t, v, a: (-v + a[1] * (1 + 0.5 * jnp.sin(a[2] * t))) / a[0]
    ev = Event(lambda t, v, a: v[0] - 1.0, jump=lambda t, v, a: jnp.zeros_like(v), direction=1)
    sol = solve(
        field,
        jnp.zeros(1),
        jnp.array([0.0, t_end]),
        (tau, i0, omega),
        solver=Dopri5(),
        event=ev,
        rtol=1e-10,
        atol=1e-11,
        max_steps=1500,
    )
    return sol.t_events, sol.n_events


@pytest.mark.slow
def test_lif_spike_time_gradients_against_finite_differences():
    p = jnp.array([0.5, 1.6, 3.0])
    spikes = jax.jit(lambda p: _lif(p)[0][:6])
    n = int(_lif(p)[1])
    assert 6 <= n <= 9
    t = spikes(p)
    # the first spike with a constant current is analytic: t = tau log(I / (I - 1))
    p_const = jnp.array([0.5, 1.6, 0.0])
    np.testing.assert_allclose(spikes(p_const)[0], 0.5 * np.log(1.6 / 0.6), rtol=1e-10)
    jac = jax.jacrev(spikes)(p)
    eps = 1e-5
    fd = jnp.stack([(spikes(p + eps * e) - spikes(p - eps * e)) / (2 * eps) for e in jnp.eye(3)], 1)
    assert np.all(np.diff(np.asarray(t)) > 0)
    np.testing.assert_allclose(jac, fd, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_pendulum_reaching_an_angle():
    """A pendulum at 0.3 rad pushed with angular speed w0 reaches 1 rad: the solve stops."""
    field = lambda t, y, a: jnp.stack([y[1], -a * jnp.sin(y[0])])
    ev = Event(lambda t, y, a: y[0] - 1.0, direction=1)

    @jax.jit
    def reach(p):
        w0, g_l = p[0], p[1]
        sol = solve(
            field,
            jnp.stack([jnp.asarray(0.3), w0]),
            jnp.array([0.0, 10.0]),
            g_l,
            solver=Dopri5(),
            event=ev,
            rtol=1e-11,
            atol=1e-12,
        )
        return sol.t_final, sol.y_final, sol.terminated, sol.ys

    p = jnp.array([3.5, 9.81])
    t_hit, y_hit, term, ys = reach(p)
    assert bool(term) and np.isnan(np.asarray(ys[-1])).all()
    ref = solve_ivp(
        lambda t, y: [y[1], -9.81 * np.sin(y[0])],
        (0, 10),
        [0.3, 3.5],
        events=lambda t, y: y[0] - 1.0,
        rtol=1e-12,
        atol=1e-12,
        method="DOP853",
    )
    np.testing.assert_allclose(t_hit, ref.t_events[0][0], rtol=1e-9)
    np.testing.assert_allclose(y_hit[0], 1.0, atol=1e-12)
    # energy conservation gives the speed at the angle exactly
    w_hit = np.sqrt(3.5**2 + 2 * 9.81 * (np.cos(1.0) - np.cos(0.3)))
    np.testing.assert_allclose(y_hit[1], w_hit, rtol=1e-9)
    dt = jax.grad(lambda p: reach(p)[0])(p)
    eps = 1e-5
    fd = [(reach(p + eps * e)[0] - reach(p - eps * e)[0]) / (2 * eps) for e in jnp.eye(2)]
    np.testing.assert_allclose(dt, fd, rtol=1e-6)


def test_events_never_fire_on_rejected_steps():
    # The first attempt (dt0 = 1 on y' = -50 y) is rejected with Dopri5's y1 ~ -2e6, far
    # below -0.5; the accepted solution decays to 0 and never comes near -0.5.
    sol = solve(
        lambda t, y, a: -50.0 * y,
        jnp.ones(1),
        jnp.array([0.0, 1.0]),
        event=Event(lambda t, y, a: y[0] + 0.5, direction=-1),
        dt0=1.0,
        solver=Dopri5(),
    )
    assert int(sol.rejected) >= 1 and int(sol.n_events) == 0 and not bool(sol.terminated)
    np.testing.assert_allclose(sol.ys[-1], np.exp(-50.0), atol=1e-8)


# --- dense output ----------------------------------------------------------------


@pytest.mark.parametrize(
    "solver, order", [(Dopri5(), 4), (Kvaerno5(), 3)], ids=["Dopri5", "Kvaerno5"]
)
def test_dense_output_order(solver, order):
    """Steps pinned to h by ts (loose tolerance); the interpolant's error between the
    steps falls like h^(order + 1): Dopri5's extension is 4th order, Hermite cubic 3rd."""
    f = lambda t, y, a: jnp.stack([y[1], -y[0]])

    @jax.jit
    def interp_error(h):
        ts = h * jnp.arange(9.0)  # eight steps of h (one compile for every h)
        sol = solve(f, jnp.array([1.0, 0.0]), ts, solver=solver, dense=True, rtol=1.0, atol=1.0)
        tq = 8 * h * jnp.linspace(0.0, 1.0, 97)
        yq = jax.vmap(sol.evaluate)(tq)
        ends = jax.vmap(sol.evaluate)(ts)[:, 0] - sol.ys[:, 0]
        return jnp.abs(yq[:, 0] - jnp.cos(tq)).max(), sol.accepted, jnp.abs(ends).max()

    errs = []
    for h in [0.4, 0.2, 0.1]:
        err, accepted, ends = interp_error(h)
        assert int(accepted) == 8
        assert float(ends) < 1e-13  # the interpolant passes through the step ends
        errs.append(float(err))
    slopes = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(slopes > order + 0.5), (errs, slopes)


@pytest.mark.slow
def test_dense_output_gradient_against_finite_differences():
    f = lambda t, y, k: jnp.stack([y[1], -k * y[0]])

    @jax.jit
    def mid(k):
        sol = solve(
            f,
            jnp.array([1.0, 0.0]),
            jnp.array([0.0, 2.0]),
            k,
            solver=Dopri5(),
            dense=True,
            rtol=1e-9,
        )
        return sol.evaluate(1.234)[0]

    eps = 1e-6
    fd = (mid(2.0 + eps) - mid(2.0 - eps)) / (2 * eps)
    np.testing.assert_allclose(jax.grad(mid)(2.0), fd, rtol=1e-6)
    np.testing.assert_allclose(mid(2.0), np.cos(np.sqrt(2.0) * 1.234), rtol=1e-7)


def test_errors():
    f = lambda t, y, a: -y
    ev = Event(lambda t, y, a: y[0] - 0.5)
    with pytest.raises(ValueError, match="adaptive"):
        solve(f, jnp.ones(1), jnp.array([0.0, 1.0]), event=ev, solver=Dopri5(), dt=0.1)
    with pytest.raises(ValueError, match="rollout strategy"):
        solve(
            f,
            jnp.ones(1),
            jnp.array([0.0, 1.0]),
            event=ev,
            solver=Dopri5(),
            grad=ContinuousAdjoint(),
        )
    with pytest.raises(ValueError, match="direction"):
        Event(lambda t, y, a: y[0], direction=2)
    with pytest.raises(ValueError, match="newton_tol"):
        Kvaerno5(newton_tol=0.0)
    with pytest.raises(ValueError, match="dense=True"):
        solve(f, jnp.ones(1), jnp.array([0.0, 1.0]), solution=True, solver=Dopri5()).evaluate(0.5)
    # a solve with more events than max_events raises
    with pytest.raises(Exception, match="max_events"):
        _ball_many = Event(
            lambda t, y, a: y[0],
            jump=lambda t, y, a: jnp.stack([y[0], -y[1]]),
            direction=-1,
            max_events=2,
        )
        solve(
            lambda t, y, a: jnp.stack([y[1], -G * jnp.ones_like(y[0])]),
            jnp.array([1.0, 0.0]),
            jnp.array([0.0, 5.0]),
            event=_ball_many,
            solver=Dopri5(),
        )


@pytest.mark.slow
def test_gradient_strategy_checkpointed_equals_bptt():
    p = jnp.array([2.0, 0.8])
    g1 = jax.grad(lambda p: _ball(p, Dopri5()).t_events[9])(p)

    def checkpointed(p):
        ev = Event(
            lambda t, y, a: y[0],
            jump=lambda t, y, a: jnp.stack([y[0], -a * y[1]]),
            direction=-1,
            max_events=12,
        )
        field = lambda t, y, a: jnp.stack([y[1], -G * jnp.ones_like(y[0])])
        return solve(
            field,
            jnp.stack([p[0], 0.0]),
            jnp.array([0.0, 5.15]),
            p[1],
            event=ev,
            rtol=1e-8,
            atol=1e-10,
            max_steps=200,
            grad=diffsim.Checkpointed(),
            solver=Dopri5(),
        ).t_events[9]

    np.testing.assert_allclose(jax.grad(checkpointed)(p), g1, rtol=1e-12)


@pytest.mark.slow
def test_van_der_pol_stiff_against_radau():
    mu = 1000.0
    vdp = lambda t, y, m: jnp.stack([y[1], m * (1 - y[0] ** 2) * y[1] - y[0]])
    ts = np.linspace(0.0, 3000.0, 7)
    sol = solve(
        vdp,
        jnp.array([2.0, 0.0]),
        jnp.asarray(ts),
        mu,
        solver=Kvaerno5(),
        rtol=1e-8,
        atol=1e-10,
        max_steps=8000,
        solution=True,
    )
    vdp_np = lambda t, y, m: np.array([y[1], m * (1 - y[0] ** 2) * y[1] - y[0]])
    jac = lambda t, y, m: np.array([[0, 1], [-2 * m * y[0] * y[1] - 1, m * (1 - y[0] ** 2)]])
    ref = _radau(vdp_np, np.array([2.0, 0.0]), ts, mu, jac, rtol=1e-12, atol=1e-14)
    err = np.abs(np.asarray(sol.ys[:, 0]) - ref.y[0])
    assert err.max() < 1e-4, err
    assert int(sol.accepted) < 3000
