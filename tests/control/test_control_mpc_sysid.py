"""MPC in closed loop against a mismatched, disturbed plant; system identification by BPTT;
costs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffsim.control import (
    MPC,
    CartPole,
    Cost,
    Discretised,
    Pendulum,
    box_penalty,
    closed_loop,
    log_barrier,
    obstacle,
    prediction_loss,
    quadratic,
    shoot,
    terminal_quadratic,
    trajectory,
    with_parameters,
)


@pytest.mark.slow  # compilation-heavy; default tier budget
def test_mpc_balances_mismatched_disturbed_cartpole():
    model = Discretised(CartPole(), 0.05)
    plant = Discretised(CartPole(pole_mass=0.13, cart_friction=0.1), 0.05)
    Q = jnp.diag(jnp.array([1.0, 5.0, 0.1, 0.1]))
    cost = Cost(quadratic(Q, 0.01 * jnp.eye(1)), terminal_quadratic(10 * Q))
    mpc = MPC(model, cost, horizon=20, iterations=2)
    x0 = jnp.array([0.3, 0.2, 0.0, 0.0])
    res = closed_loop(mpc, plant, x0, 60, key=jax.random.key(0), disturbance=0.002)
    assert res.xs.shape == (61, 4) and res.us.shape == (60, 1) and res.step_times.shape == (60,)
    assert float(jnp.max(jnp.abs(res.xs[-10:, 1]))) < 0.03
    assert float(jnp.max(jnp.abs(res.xs[-10:, 0]))) < 0.1
    # Open loop with the same disturbance, the upright pole falls.
    xs_open = trajectory(plant, x0, jnp.zeros((60, 1)))
    assert float(jnp.max(jnp.abs(xs_open[:, 1]))) > 1.0
    with pytest.raises(ValueError, match="horizon must be an int >= 1"):
        MPC(model, cost, horizon=0)


@pytest.mark.slow  # compilation-heavy; default tier budget
def test_mpc_tracks_time_varying_reference():
    model = Discretised(Pendulum(), 0.05)
    ts = jnp.arange(200) * 0.05
    ref = jnp.stack([0.5 * jnp.sin(ts), 0.5 * jnp.cos(ts)], axis=1)
    cost = Cost(
        quadratic(jnp.diag(jnp.array([10.0, 0.1])), 1e-3 * jnp.eye(1), x_ref=ref),
        lambda x: 0.0 * jnp.sum(x),
    )
    res = closed_loop(
        MPC(model, cost, horizon=15, iterations=2), model, ref[0], 80, key=jax.random.key(1)
    )
    err = jnp.abs(res.xs[1:, 0] - ref[1:81, 0])
    assert float(jnp.mean(err[10:])) < 0.01


def _pendulum_data(key, true):
    model = Discretised(true, 0.05)
    us = jax.random.normal(key, (4, 40, 1))
    x0s = jnp.array([[0.5, 0.0], [-1.0, 0.5], [2.0, 0.0], [0.0, -1.0]])
    return jax.vmap(lambda x0, u: trajectory(model, x0, u))(x0s, us), us


def test_sysid_recovers_parameters_from_clean_data(getkey):
    true = Pendulum(mass=1.0, length=1.3, damping=0.25)
    observed, us = _pendulum_data(getkey(), true)
    guess = {"length": jnp.log(1.0), "damping": jnp.log(0.1)}

    def objective(logp):
        system = with_parameters(Pendulum(), **jax.tree.map(jnp.exp, logp))
        return prediction_loss(Discretised(system, 0.05), observed, us, window=20)

    res = jax.jit(lambda p: shoot(objective, p, optax.lbfgs(), steps=60))(guess)
    np.testing.assert_allclose(jnp.exp(res.params["length"]), 1.3, rtol=1e-6)
    np.testing.assert_allclose(jnp.exp(res.params["damping"]), 0.25, rtol=1e-6)
    assert float(res.cost) < 1e-12


def test_prediction_loss_and_with_parameters_errors(unchecked):
    with pytest.raises(ValueError, match="has no field 'mass_'"):
        with_parameters(Pendulum(), mass_=1.0)
    model = Discretised(Pendulum(), 0.05)
    with pytest.raises(ValueError, match="window must be an int dividing T"):
        prediction_loss(model, jnp.zeros((11, 2)), jnp.zeros((10, 1)), window=3)
    with pytest.raises(ValueError, match="need observed"):
        prediction_loss(model, jnp.zeros((10, 2)), jnp.zeros((10, 1)))


def test_costs_shapes_and_values():
    ob = obstacle(jnp.array([1.0, 0.0]), 0.5, weight=2.0, sharpness=50.0)
    inside, outside = ob(jnp.array([1.1, 0.0]), None, 0), ob(jnp.array([3.0, 0.0]), None, 0)
    np.testing.assert_allclose(inside, 2.0 * 0.4, rtol=1e-3)
    assert float(outside) < 1e-20
    box = box_penalty(-1.0, 1.0, weight=3.0)
    np.testing.assert_allclose(box(jnp.array([1.5, 0.0, -2.0]), None, 0), 3.0 * (0.25 + 1.0))
    bar = log_barrier(-1.0, 1.0)
    assert float(bar(jnp.array([1.5]), None, 0)) == np.inf
    np.testing.assert_allclose(bar(jnp.array([0.0]), None, 0), 0.0, atol=1e-15)
    g = jax.grad(lambda x: bar(x, None, 0))(jnp.array([0.5]))
    np.testing.assert_allclose(g, [1 / 0.5 - 1 / 1.5], rtol=1e-12)
    with pytest.raises(ValueError, match="radius must be > 0"):
        obstacle(jnp.zeros(2), 0.0)
    with pytest.raises(ValueError, match="Q must be a square matrix"):
        quadratic(jnp.ones(3), jnp.eye(1))
