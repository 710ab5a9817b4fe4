"""LQR identities (Riccati = BPTT shooting optimum = iLQR, scipy's DARE), iLQR on a nonlinear
system, implicit differentiation of iLQR, multiple shooting."""

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from diffsim.control import (
    CartPole,
    Cost,
    Discretised,
    DoubleIntegrator,
    LinearDynamics,
    Pendulum,
    ilqr,
    linearise,
    lqr,
    multiple_shooting,
    multiple_shooting_init,
    quadratic,
    shoot,
    single_shooting,
    terminal_quadratic,
    trajectory,
    trajectory_cost,
)

T = 40


def _double_integrator():
    A, B = linearise(Discretised(DoubleIntegrator(), 0.1), jnp.zeros(2), jnp.zeros(1))
    return (
        A,
        B,
        jnp.diag(jnp.array([1.0, 0.1])),
        0.01 * jnp.eye(1),
        jnp.diag(jnp.array([10.0, 1.0])),
    )


def _cartpole_upright():
    A, B = linearise(Discretised(CartPole(), 0.05), jnp.zeros(4), jnp.zeros(1))
    return A, B, jnp.diag(jnp.array([1.0, 1.0, 0.1, 0.1])), 0.1 * jnp.eye(1), 10 * jnp.eye(4)


PROBLEMS = {"double_integrator": _double_integrator, "cartpole_upright": _cartpole_upright}


def _lqr_rollout(A, B, K, x0):
    def step(x, K_t):
        u = -K_t @ x
        return A @ x + B @ u, u

    _, us = jax.lax.scan(step, x0, K)
    return us


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n == "cartpole_upright" else n for n in PROBLEMS],
)
def test_lqr_equals_shooting_and_ilqr(name):
    A, B, Q, R, Qf = PROBLEMS[name]()
    n = A.shape[0]
    x0 = jnp.linspace(0.3, -0.2, n)
    model = LinearDynamics(A, B)
    cost = Cost(quadratic(Q, R), terminal_quadratic(Qf))
    sol = lqr(A, B, Q, R, Qf, T)
    us_lqr = _lqr_rollout(A, B, sol.gains, x0)
    J_lqr = trajectory_cost(model, cost, x0, us_lqr)
    # The Riccati value function gives the optimal cost.
    np.testing.assert_allclose(J_lqr, x0 @ sol.values[0] @ x0, rtol=1e-12)

    @jax.jit
    def solve(x0):
        us0 = jnp.zeros((T, 1))
        shot = shoot(single_shooting(model, cost, x0), us0, optax.lbfgs(), steps=200)
        return shot, ilqr(model, cost, x0, us0, reg=0.0)

    shot, res = solve(x0)
    scale = float(jnp.max(jnp.abs(us_lqr)))
    # BPTT-shooting optimum (L-BFGS through optax) = Riccati.
    assert float(jnp.max(jnp.abs(shot.params - us_lqr))) < 1e-7 * scale
    np.testing.assert_allclose(shot.cost, J_lqr, rtol=1e-10)
    # iLQR on a linear-quadratic problem is one exact Newton step: = Riccati.
    assert float(jnp.max(jnp.abs(res.us - us_lqr))) < 1e-10 * scale
    assert bool(res.converged) and int(res.iterations) <= 3
    # iLQR's feedback gains are the LQR gains (u = u_t + K_t (x - x_t) with K_t = -gains).
    np.testing.assert_allclose(res.gains, -sol.gains, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_riccati_tends_to_scipy_dare(name):
    A, B, Q, R, _ = PROBLEMS[name]()
    P_inf = scipy.linalg.solve_discrete_are(
        np.asarray(A), np.asarray(B), np.asarray(Q), np.asarray(R)
    )
    # Starting from Qf = P_inf the recursion is stationary; from Qf = Q it converges.
    sol = lqr(A, B, Q, R, jnp.asarray(P_inf), 5)
    np.testing.assert_allclose(sol.values[0], P_inf, rtol=1e-9)
    sol = lqr(A, B, Q, R, Q, 2000)
    np.testing.assert_allclose(sol.values[0], P_inf, rtol=1e-7)
    K_inf = np.linalg.solve(np.asarray(R) + B.T @ P_inf @ B, B.T @ P_inf @ A)
    np.testing.assert_allclose(sol.gains[0], K_inf, rtol=1e-7)


def _pendulum_problem():
    model = Discretised(Pendulum(damping=0.1), 0.1)
    cost = Cost(
        quadratic(
            jnp.diag(jnp.array([0.1, 0.01])), 0.05 * jnp.eye(1), x_ref=jnp.array([jnp.pi, 0.0])
        ),
        terminal_quadratic(20 * jnp.eye(2), jnp.array([jnp.pi, 0.0])),
    )
    return model, cost


@pytest.mark.slow  # compilation-heavy; default tier budget
def test_ilqr_nonlinear_reaches_shooting_optimum():
    model, cost = _pendulum_problem()
    x0, us0 = jnp.zeros(2), jnp.zeros((30, 1))

    @jax.jit
    def solve(x0):
        res = ilqr(model, cost, x0, us0)
        shot = shoot(single_shooting(model, cost, x0), res.us + 0.01, optax.lbfgs(), steps=40)
        return res, shot

    res, shot = solve(x0)
    assert bool(res.converged)
    assert float(res.cost) < 0.5 * float(res.history[0])
    hist = np.asarray(res.history)
    assert np.all(np.diff(hist) <= 1e-12)  # accepted steps never increase the cost
    # Stationary: BPTT gradient vanishes; shooting from a perturbed start returns to it.
    g = jax.grad(lambda u: trajectory_cost(model, cost, x0, u))(res.us)
    assert float(jnp.max(jnp.abs(g))) < 1e-4
    np.testing.assert_allclose(shot.cost, res.cost, rtol=1e-8)


@pytest.mark.slow  # compilation-heavy; default tier budget
def test_ilqr_implicit_gradient_matches_finite_differences():
    model, cost = _pendulum_problem()
    us0 = jnp.zeros((30, 1))
    solve = jax.jit(lambda m, x0: ilqr(m, cost, x0, us0, tol=1e-14, max_iter=200))
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def J(p, x0):
        return solve(eqx.combine(p, static), x0).cost

    def u5(p, x0):
        return solve(eqx.combine(p, static), x0).us[5, 0]

    x0 = jnp.array([0.1, 0.0])
    gJ = jax.jit(jax.grad(J, argnums=(0, 1)))(params, x0)
    gu = jax.jit(jax.grad(u5, argnums=(0, 1)))(params, x0)
    h = 1e-5
    for i in range(2):
        e = jnp.zeros(2).at[i].set(h)
        np.testing.assert_allclose(
            gJ[1][i], (J(params, x0 + e) - J(params, x0 - e)) / (2 * h), rtol=1e-5
        )
        np.testing.assert_allclose(
            gu[1][i], (u5(params, x0 + e) - u5(params, x0 - e)) / (2 * h), rtol=1e-4, atol=1e-7
        )

    # With respect to a physical parameter (the pendulum length).
    def shift(p, d):
        return eqx.tree_at(lambda q: q.system.length, p, p.system.length + d)

    fd = (u5(shift(params, h), x0) - u5(shift(params, -h), x0)) / (2 * h)
    np.testing.assert_allclose(gu[0].system.length, fd, rtol=1e-4)
    # Envelope theorem: dJ*/dx0 equals the partial derivative at the fixed optimal controls.
    res = solve(model, x0)
    partial = jax.grad(lambda x: trajectory_cost(model, cost, x, res.us))(x0)
    np.testing.assert_allclose(gJ[1], partial, rtol=1e-6)


@pytest.mark.slow  # compilation-heavy; default tier budget
def test_ilqr_gradient_of_lqr_value():
    A, B, Q, R, Qf = _double_integrator()
    model, cost = LinearDynamics(A, B), Cost(quadratic(Q, R), terminal_quadratic(Qf))
    x0 = jnp.array([0.5, -0.3])
    g = jax.grad(lambda x: ilqr(model, cost, x, jnp.zeros((T, 1)), reg=0.0).cost)(x0)
    P0 = lqr(A, B, Q, R, Qf, T).values[0]
    np.testing.assert_allclose(g, 2 * P0 @ x0, rtol=1e-9)


@pytest.mark.slow  # compilation-heavy; default tier budget
def test_multiple_shooting_matches_single_shooting():
    A, B, Q, R, Qf = _double_integrator()
    model, cost = LinearDynamics(A, B), Cost(quadratic(Q, R), terminal_quadratic(Qf))
    x0 = jnp.array([1.0, 0.0])
    sol = lqr(A, B, Q, R, Qf, T)
    us_lqr = _lqr_rollout(A, B, sol.gains, x0)
    v0 = multiple_shooting_init(model, x0, jnp.zeros((T, 1)), 4)

    @jax.jit
    def penalised_optimum(weight):
        # The problem is quadratic in (us, knots): one Newton step from anywhere is exact.
        objective, defects = multiple_shooting(model, cost, x0, 4, defect_weight=weight)
        flat, unravel = jax.flatten_util.ravel_pytree(v0)
        f = lambda z: objective(unravel(z))
        z = flat - jnp.linalg.solve(jax.hessian(f)(flat), jax.grad(f)(flat))
        # memory >= number of variables: L-BFGS is exact on a quadratic (ill-conditioned here).
        lbfgs = shoot(objective, v0, optax.lbfgs(memory_size=50), steps=150)
        return unravel(z), defects(unravel(z)), objective(v0), lbfgs

    objective, defects = multiple_shooting(model, cost, x0, 4)
    assert float(jnp.max(jnp.abs(defects(v0)))) < 1e-14
    np.testing.assert_allclose(objective(v0), trajectory_cost(model, cost, x0, v0.us), rtol=1e-13)
    errors = []
    for weight in (1e2, 1e4):
        v, d, _, lbfgs = penalised_optimum(weight)
        errors.append(float(jnp.max(jnp.abs(v.us - us_lqr))))
        if weight == 1e2:  # conditioning grows with the weight; L-BFGS checked on the first
            scale = float(jnp.max(jnp.abs(v.us)))
            np.testing.assert_allclose(lbfgs.params.us, v.us, atol=1e-6 * scale)
    # The penalty method's error falls as O(1 / weight) towards the single-shooting optimum.
    assert errors[1] < 0.03 * errors[0]
    v, d, _, _ = penalised_optimum(1e8)
    assert float(jnp.max(jnp.abs(d))) < 1e-6
    np.testing.assert_allclose(v.us, us_lqr, atol=1e-5 * float(jnp.max(jnp.abs(us_lqr))))
    xs = trajectory(model, x0, v.us)
    np.testing.assert_allclose(v.knots, xs[10:-1:10], atol=1e-6)


def test_adam_shooting_decreases_cost():
    model, cost = _pendulum_problem()
    x0 = jnp.zeros(2)
    res = jax.jit(lambda u: shoot(single_shooting(model, cost, x0), u, optax.adam(0.1), steps=50))(
        jnp.zeros((30, 1))
    )
    assert float(res.history[-1]) < 0.5 * float(res.history[0])


def test_bad_arguments(unchecked):
    A, B, Q, R, Qf = _double_integrator()
    with pytest.raises(ValueError, match="horizon must be an int >= 1"):
        lqr(A, B, Q, R, Qf, 0)
    with pytest.raises(ValueError, match="need A"):
        lqr(A, B[:1], Q, R, Qf, 5)
    model, cost = LinearDynamics(A, B), Cost(quadratic(Q, R), terminal_quadratic(Qf))
    with pytest.raises(ValueError, match="us0 must have shape"):
        ilqr(model, cost, jnp.zeros(2), jnp.zeros(5))
    with pytest.raises(ValueError, match="ilqr: x0 contains NaN"):
        ilqr(model, cost, jnp.array([jnp.nan, 0.0]), jnp.zeros((5, 1)))
    with pytest.raises(ValueError, match="ilqr: us0 contains inf"):
        ilqr(model, cost, jnp.zeros(2), jnp.full((5, 1), jnp.inf))
    with pytest.raises(ValueError, match="segments must be an int"):
        multiple_shooting_init(model, jnp.zeros(2), jnp.zeros((10, 1)), 3)


def test_ilqr_swings_up_a_pendulum_in_15_steps():
    """The default tier's iLQR on a nonlinear problem (the slow tier has the 30-step version
    against shooting and the implicit gradients): hanging to upright in 15 steps of 0.2 s."""
    model = Discretised(Pendulum(damping=0.1), 0.2)
    target = jnp.array([jnp.pi, 0.0])
    cost = Cost(
        quadratic(jnp.diag(jnp.array([0.1, 0.01])), 0.01 * jnp.eye(1), x_ref=target),
        terminal_quadratic(100 * jnp.eye(2), target),
    )
    x0, us0 = jnp.zeros(2), jnp.zeros((15, 1))
    res = jax.jit(lambda x0: ilqr(model, cost, x0, us0))(x0)
    assert bool(res.converged)
    hist = np.asarray(res.history)[: int(res.iterations) + 1]
    assert np.all(np.diff(hist) <= 1e-12)  # accepted steps never increase the cost
    assert hist[-1] < 0.1 * hist[0]
    xs = trajectory(model, x0, res.us)
    np.testing.assert_allclose(res.xs, xs, atol=1e-12)  # the returned states are the rollout's
    assert float(jnp.max(jnp.abs(xs[-1] - target))) < 0.05
    # A stationary point: the BPTT gradient of the same cost vanishes there.
    g = jax.grad(lambda u: trajectory_cost(model, cost, x0, u))(res.us)
    assert float(jnp.max(jnp.abs(g))) < 1e-4
