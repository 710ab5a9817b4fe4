"""Systems: step gradients against finite differences, costate = jax.grad on every system,
manipulator equations against an autodiff Euler-Lagrange derivation, invariants."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import diffsim
from diffsim.control import (
    Acrobot,
    BicycleCar,
    CartPole,
    Clip,
    Cost,
    Discretised,
    DoubleIntegrator,
    Pendulum,
    PlanarQuadrotor,
    SmoothSaturation,
    TwoLinkArm,
    add_costs,
    control_effort,
    costate_gradient,
    obstacle,
    quadratic,
    terminal_quadratic,
    trajectory,
    trajectory_cost,
)
from diffsim.ode import Euler, Midpoint

SYSTEMS = {
    "double_integrator": DoubleIntegrator(mass=1.3),
    "pendulum": Pendulum(mass=0.7, length=1.1, damping=0.2),
    "cartpole": CartPole(cart_friction=0.1, pole_friction=0.01),
    "two_link_arm": TwoLinkArm(m1=1.0, m2=0.8, l1=1.0, l2=0.7, damping=0.05),
    "acrobot": Acrobot(),
    "bicycle_car": BicycleCar(),
    "planar_quadrotor": PlanarQuadrotor(),
}


def _sample(system, key):
    kx, ku = jax.random.split(key)
    x = 0.5 * jax.random.normal(kx, (system.state_dim,))
    u = 0.5 * jax.random.normal(ku, (system.control_dim,))
    return x, u


def _cost(system):
    n, m = system.state_dim, system.control_dim
    running = add_costs(
        quadratic(0.3 * jnp.eye(n), 0.1 * jnp.eye(m), x_ref=0.1 * jnp.ones((5, n))),
        control_effort(0.05),
        obstacle(jnp.array([0.2, -0.1]), 0.3, weight=2.0),
    )
    return Cost(running, terminal_quadratic(2.0 * jnp.eye(n), 0.2 * jnp.ones(n)))


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_step_gradient_matches_finite_differences(name, getkey):
    system = SYSTEMS[name]
    model = Discretised(system, dt=0.05)
    x, u = _sample(system, getkey())
    check_grads(
        jax.jit(lambda x, u: model(x, u)),
        (x, u),
        order=1,
        modes=["rev"],
        atol=1e-6,
        rtol=1e-6,
    )
    # Parameter gradients: d sum(step) / d theta against central differences per field.
    params, static = eqx.partition(model, eqx.is_inexact_array)
    w = jax.random.normal(getkey(), (system.state_dim,))

    @jax.jit
    def scalar(p):
        return w @ eqx.combine(p, static)(x, u)

    g = jax.grad(scalar)(params)
    leaves, treedef = jax.tree.flatten(params)
    g_leaves = jax.tree.leaves(g)
    for i, (leaf, gl) in enumerate(zip(leaves, g_leaves)):
        h = 1e-6 * max(1.0, abs(float(leaf)))

        def shifted(d, i=i, leaf=leaf):
            new = list(leaves)
            new[i] = leaf + d
            return scalar(jax.tree.unflatten(treedef, new))

        fd = (shifted(h) - shifted(-h)) / (2 * h)
        np.testing.assert_allclose(gl, fd, rtol=1e-6, atol=1e-8)


# The cart-pole's costate identity stays in the default tier; the arms' (14 s each) are slow.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n in ("two_link_arm", "acrobot") else n
        for n in SYSTEMS
    ],
)
def test_costate_gradient_equals_jax_grad(name, getkey):
    system = SYSTEMS[name]
    model = Discretised(system, dt=0.05)
    cost = _cost(system)
    x0, _ = _sample(system, getkey())
    us = 0.3 * jax.random.normal(getkey(), (12, system.control_dim))

    def J(model, x0, us):
        return trajectory_cost(model, cost, x0, us, t0=2)

    params, static = eqx.partition(model, eqx.is_inexact_array)

    @jax.jit
    def both(params, x0, us):
        model = eqx.combine(params, static)
        grads = jax.grad(lambda p, x, u: J(eqx.combine(p, static), x, u), argnums=(0, 1, 2))(
            params, x0, us
        )
        return costate_gradient(model, cost, x0, us, t0=2), grads, J(model, x0, us)

    res, (g_p, g_x0, g_us), J_value = both(params, x0, us)

    def rel(a, b):
        return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))

    assert rel(res.grad_us, g_us) < 1e-10
    assert rel(res.grad_x0, g_x0) < 1e-10
    assert rel(res.costates[0], g_x0) < 1e-10
    for a, b in zip(jax.tree.leaves(res.grad_model), jax.tree.leaves(g_p)):
        assert abs(float(a - b)) <= 1e-10 * max(1.0, abs(float(b)))
    np.testing.assert_allclose(res.cost, J_value, rtol=1e-13)
    # lambda_T is the terminal cost's gradient.
    np.testing.assert_allclose(res.costates[-1], jax.grad(cost.terminal)(res.xs[-1]), rtol=1e-13)


@pytest.mark.parametrize(
    "grad",
    [
        # Checkpointed against BPTT is checked in tests/core/test_rollout.py (default tier).
        pytest.param(diffsim.Checkpointed(), marks=pytest.mark.slow),
        diffsim.DiscreteAdjoint(),
    ],
    ids=["checkpointed", "discrete_adjoint"],
)
def test_gradient_strategies_agree_with_bptt(grad, getkey):
    system = SYSTEMS["cartpole"]
    model = Discretised(system, dt=0.05)
    cost = _cost(system)
    x0, _ = _sample(system, getkey())
    us = 0.3 * jax.random.normal(getkey(), (25, 1))
    g_bptt = jax.jit(jax.grad(lambda u: trajectory_cost(model, cost, x0, u)))(us)
    g = jax.jit(jax.grad(lambda u: trajectory_cost(model, cost, x0, u, grad=grad)))(us)
    np.testing.assert_allclose(g, g_bptt, rtol=1e-11, atol=1e-13)


def _euler_lagrange(lagrangian, q, qd, generalised_force):
    """q'' from the Euler-Lagrange equations, all derivatives by autodiff."""
    M = jax.hessian(lagrangian, argnums=1)(q, qd)
    dL_dq = jax.grad(lagrangian, argnums=0)(q, qd)
    mixed = jax.jacfwd(jax.grad(lagrangian, argnums=1), argnums=0)(q, qd)
    return jnp.linalg.solve(M, dL_dq - mixed @ qd + generalised_force)


def test_cartpole_matches_euler_lagrange(getkey):
    s = CartPole(cart_mass=1.2, pole_mass=0.3, length=0.6, cart_friction=0.2, pole_friction=0.05)

    def L(q, qd):
        tip_v = jnp.stack(
            [qd[0] + s.length * jnp.cos(q[1]) * qd[1], -s.length * jnp.sin(q[1]) * qd[1]]
        )
        kinetic = 0.5 * s.cart_mass * qd[0] ** 2 + 0.5 * s.pole_mass * tip_v @ tip_v
        return kinetic - s.pole_mass * s.gravity * s.length * jnp.cos(q[1])

    x, u = _sample(s, getkey())
    force = jnp.stack([u[0] - s.cart_friction * x[2], -s.pole_friction * x[3]])
    qdd = jax.jit(_euler_lagrange, static_argnums=0)(L, x[:2], x[2:], force)
    np.testing.assert_allclose(s.dynamics(x, u)[2:], qdd, rtol=1e-12)


@pytest.mark.parametrize("cls", [TwoLinkArm, Acrobot])
def test_two_link_matches_euler_lagrange(cls, getkey):
    s = cls(m1=1.1, m2=0.7, l1=0.9, l2=1.2, damping=0.1)

    def L(q, qd):
        # Uniform rods: kinetic energy of link 2 = translational (centre) + rotational (centre).
        c1 = 0.5 * s.l1 * jnp.stack([jnp.sin(q[0]), -jnp.cos(q[0])])
        v1 = 0.5 * s.l1 * qd[0] * jnp.stack([jnp.cos(q[0]), jnp.sin(q[0])])
        a12 = q[0] + q[1]
        c2 = 2 * c1 + 0.5 * s.l2 * jnp.stack([jnp.sin(a12), -jnp.cos(a12)])
        v2 = 2 * v1 + 0.5 * s.l2 * (qd[0] + qd[1]) * jnp.stack([jnp.cos(a12), jnp.sin(a12)])
        kinetic = (
            0.5 * s.m1 * s.l1**2 / 3 * qd[0] ** 2
            + 0.5 * s.m2 * v2 @ v2
            + 0.5 * s.m2 * s.l2**2 / 12 * (qd[0] + qd[1]) ** 2
        )
        return kinetic - s.gravity * (s.m1 * c1[1] + s.m2 * c2[1])

    x, u = _sample(s, getkey())
    tau = u if cls is TwoLinkArm else jnp.stack([0.0, u[0]])
    qdd = jax.jit(_euler_lagrange, static_argnums=0)(L, x[:2], x[2:], tau - s.damping * x[2:])
    np.testing.assert_allclose(s.dynamics(x, u)[2:], qdd, rtol=1e-11)
    elbow, tip = s.positions(x)
    np.testing.assert_allclose(jnp.linalg.norm(elbow), s.l1, rtol=1e-12)
    np.testing.assert_allclose(jnp.linalg.norm(tip - elbow), s.l2, rtol=1e-12)


def test_double_integrator_discretisation_is_exact():
    # RK4 is exact on polynomial trajectories: x' = v, v' = u/m with constant u.
    model = Discretised(DoubleIntegrator(mass=2.0), dt=0.3)
    A, B = jax.jacfwd(model, argnums=(0, 1))(jnp.zeros(2), jnp.zeros(1))
    np.testing.assert_allclose(A, [[1.0, 0.3], [0.0, 1.0]], rtol=1e-14)
    np.testing.assert_allclose(B, [[0.3**2 / 4], [0.3 / 2]], rtol=1e-14)


def test_energy_is_conserved_without_friction_or_control():
    s = CartPole()
    model = Discretised(s, dt=0.01)
    xs = trajectory(model, jnp.array([0.0, 2.5, 0.3, 0.0]), jnp.zeros((300, 1)))

    def energy(x):
        v, w, th = x[2], x[3], x[1]
        tip_v2 = (v + s.length * jnp.cos(th) * w) ** 2 + (s.length * jnp.sin(th) * w) ** 2
        return (
            0.5 * s.cart_mass * v**2
            + 0.5 * s.pole_mass * tip_v2
            + s.pole_mass * s.gravity * s.length * jnp.cos(th)
        )

    E = jax.jit(jax.vmap(energy))(xs)
    assert float(jnp.max(jnp.abs(E - E[0]))) < 1e-6 * float(jnp.abs(E[0]) + 1)
    # Horizontal momentum is conserved too (no force on the cart).
    p = jax.vmap(
        lambda x: (s.cart_mass + s.pole_mass) * x[2] + s.pole_mass * s.length * jnp.cos(x[1]) * x[3]
    )(xs)
    assert float(jnp.max(jnp.abs(p - p[0]))) < 1e-8


def test_quadrotor_hovers_and_pendulum_rests():
    q = PlanarQuadrotor(mass=0.8)
    x = jnp.array([0.3, 1.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(q.dynamics(x, q.hover()), jnp.zeros(6), atol=1e-14)
    p = Pendulum()
    np.testing.assert_allclose(p.dynamics(jnp.zeros(2), jnp.zeros(1)), jnp.zeros(2), atol=1e-14)


def test_solvers_converge_to_rk4():
    s = Pendulum(damping=0.0)
    x0, u = jnp.array([1.0, 0.0]), jnp.array([0.2])
    ref = Discretised(s, dt=0.1, substeps=64)(x0, u)
    errs = {}
    for solver in (Euler(), Midpoint()):
        e1 = jnp.linalg.norm(Discretised(s, 0.1, solver, substeps=8)(x0, u) - ref)
        e2 = jnp.linalg.norm(Discretised(s, 0.1, solver, substeps=16)(x0, u) - ref)
        errs[type(solver).__name__] = float(jnp.log2(e1 / e2))
    assert 0.8 < errs["Euler"] < 1.2 and 1.8 < errs["Midpoint"] < 2.2


def test_control_limits():
    sat = SmoothSaturation(jnp.array([-1.0, 0.0]), jnp.array([1.0, 4.0]))
    u = jnp.array([[8.0, -8.0], [0.0, 2.0], [-3.0, 9.0]])
    out = jax.vmap(sat)(u)
    assert bool(jnp.all((out > sat.lower[None]) & (out < sat.upper[None])))
    np.testing.assert_allclose(jax.jacfwd(sat)(jnp.array([0.0, 2.0])), jnp.eye(2), atol=1e-14)
    clip = Clip(-1.0, 1.0)
    np.testing.assert_allclose(clip(jnp.array([2.0, -0.5])), [1.0, -0.5])
    model = Discretised(DoubleIntegrator(), 0.1, limits=Clip(-1.0, 1.0))
    np.testing.assert_allclose(
        model(jnp.zeros(2), jnp.array([5.0])), model(jnp.zeros(2), jnp.array([1.0]))
    )
    with pytest.raises(ValueError, match="lower < upper"):
        SmoothSaturation(1.0, -1.0)


def test_bad_input_raises(unchecked):
    with pytest.raises(ValueError, match="dt must be > 0"):
        Discretised(CartPole(), dt=0.0)
    with pytest.raises(ValueError, match="substeps"):
        Discretised(CartPole(), dt=0.1, substeps=0)
    with pytest.raises(ValueError, match=r"x must have shape \(4,\)"):
        CartPole().dynamics(jnp.zeros(3), jnp.zeros(1))
    with pytest.raises(ValueError, match=r"us must have shape \(T, m\)"):
        trajectory(Discretised(CartPole(), 0.1), jnp.zeros(4), jnp.zeros(5))
