"""Solver accuracy: measured convergence orders, agreement with scipy and diffrax."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
from ode_registry import (
    ALL_SOLVERS,
    LORENZ_ARGS,
    LORENZ_Y0,
    RK_Y0,
    STIFF_A,
    harmonic_exact,
    linear,
    lorenz,
    name,
    rk_exact,
    rk_field,
)

from diffsim.ode import RK4, Dopri5, Euler, Heun, Leapfrog, Midpoint, SymplecticEuler, solve

T = 6.0
TS = np.linspace(0.0, T, 7)


def _max_error(solver, n):
    """Largest error over the saved times (one point alone can sit on a cancellation)."""
    if isinstance(solver, (SymplecticEuler, Leapfrog)):
        w = 1.3
        f = lambda t, y, w: (y[1], -(w**2) * y[0])
        q0, p0 = jnp.array([1.0, -0.5]), jnp.array([0.0, 0.3])
        q, p = solve(f, (q0, p0), TS, jnp.array(w), solver=solver, n_steps=n)
        qe, pe = harmonic_exact(TS[:, None], np.asarray(q0), np.asarray(p0), w)
        return max(np.abs(q - qe).max(), np.abs(p - pe).max())
    ys = solve(rk_field, RK_Y0, TS, jnp.array(1.5), solver=solver, n_steps=n)
    exact = [rk_exact(t, RK_Y0, 1.5) for t in TS]
    return max(float(np.abs(ys[k][i] - e[k]).max()) for i, e in enumerate(exact) for k in e)


@pytest.mark.parametrize("solver", ALL_SOLVERS, ids=name)
def test_convergence_order(solver):
    # Steps per unit time in the asymptotic range, above round-off for the high orders.
    ns = {1: [32, 64, 128], 2: [16, 32, 64], 4: [8, 16, 32], 5: [16, 24, 36]}[solver.order]
    errs = [_max_error(solver, n) for n in ns]
    slope = np.polyfit(np.log(1.0 / np.array(ns)), np.log(errs), 1)[0]
    assert abs(slope - solver.order) < 0.2, (errs, slope)


def _scipy_ref(f, y0, ts, args):
    sol = scipy.integrate.solve_ivp(
        lambda t, y: np.asarray(f(t, jnp.asarray(y), args)),
        (ts[0], ts[-1]),
        np.asarray(y0),
        method="DOP853",
        t_eval=ts,
        rtol=1e-13,
        atol=1e-13,
    )
    assert sol.success
    return sol.y.T


PROBLEMS = {
    "lorenz": (lorenz, LORENZ_Y0, LORENZ_ARGS, np.linspace(0.0, 1.0, 5)),
    "stiff_linear": (
        linear,
        jnp.array([1.0, 0.0, -1.0]),
        jnp.asarray(STIFF_A),
        np.linspace(0.0, 1.0, 5),
    ),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_agrees_with_scipy(problem):
    f, y0, args, ts = PROBLEMS[problem]
    ref = _scipy_ref(f, y0, ts, args)
    scale = np.abs(ref).max()
    # RK4 with 1000 steps on [0, 1]: error ~ C h^4; the adaptive Dopri5 at rtol 1e-10.
    ys = jax.jit(lambda y0: solve(f, y0, ts, args, solver=RK4(), dt=1e-3))(y0)
    assert np.abs(np.asarray(ys) - ref).max() / scale < 1e-8
    ys = solve(f, y0, ts, args, solver=Dopri5(), rtol=1e-11, atol=1e-11)
    assert np.abs(np.asarray(ys) - ref).max() / scale < 1e-8
    if problem == "stiff_linear":
        exact = np.stack([scipy.linalg.expm(STIFF_A * t) @ np.asarray(y0) for t in ts])
        assert np.abs(ref - exact).max() < 1e-10


def test_harmonic_exact_adaptive():
    f = lambda t, y, w: jnp.stack([y[1], -(w**2) * y[0]])
    ts = np.linspace(0.0, 5.0, 11)
    ys = solve(f, jnp.array([1.0, 0.0]), ts, 2.0, solver=Dopri5(), rtol=1e-10, atol=1e-12)
    q, p = harmonic_exact(ts, 1.0, 0.0, 2.0)
    assert np.abs(np.asarray(ys) - np.stack([q, p], 1)).max() < 1e-8


def _diffrax_rk4():
    rk4_tableau = diffrax.ButcherTableau(
        c=np.array([0.5, 0.5, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    )

    class DiffraxRK4(diffrax.AbstractERK):
        tableau = rk4_tableau
        interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

        def order(self, terms):
            return 4

    return DiffraxRK4()


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param((Euler(), diffrax.Euler()), marks=pytest.mark.slow),
        pytest.param((Midpoint(), diffrax.Midpoint()), marks=pytest.mark.slow),
        pytest.param((Heun(), diffrax.Heun()), marks=pytest.mark.slow),
        (RK4(), "rk4"),
        pytest.param((Dopri5(), diffrax.Dopri5()), marks=pytest.mark.slow),
    ],
    ids=lambda p: name(p[0]),
)
def test_fixed_step_equals_diffrax(pair):
    ours, theirs = pair
    theirs = _diffrax_rk4() if theirs == "rk4" else theirs
    ts = np.linspace(0.0, 1.0, 6)
    dt = 0.01
    ys = solve(lorenz, LORENZ_Y0, ts, LORENZ_ARGS, solver=ours, dt=dt)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lorenz),
        theirs,
        0.0,
        1.0,
        dt,
        LORENZ_Y0,
        args=LORENZ_ARGS,
        saveat=diffrax.SaveAt(ts=ts),
        max_steps=200,
    )
    # The same arithmetic up to reassociation; Lorenz amplifies round-off mildly.
    np.testing.assert_allclose(ys, sol.ys, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_symplectic_euler_equals_diffrax_semi_implicit():
    w, ts = 1.3, np.linspace(0.0, 2.0, 5)
    force = lambda t, q, args: -(w**2) * q - 0.2 * q**3
    vel = lambda t, p, args: p
    f = lambda t, y, args: (vel(t, y[1], args), force(t, y[0], args))
    q0, p0 = jnp.array([1.0, -0.5]), jnp.array([0.0, 0.3])
    q, p = solve(f, (q0, p0), ts, None, solver=SymplecticEuler(), dt=0.01)
    # diffrax's SemiImplicitEuler updates its first component from the second first:
    # with y = (p, q) that is the kick-then-drift order used here.
    sol = diffrax.diffeqsolve(
        (diffrax.ODETerm(force), diffrax.ODETerm(vel)),
        diffrax.SemiImplicitEuler(),
        0.0,
        2.0,
        0.01,
        (p0, q0),
        saveat=diffrax.SaveAt(ts=ts),
        max_steps=400,
    )
    np.testing.assert_allclose(p, sol.ys[0], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(q, sol.ys[1], rtol=1e-11, atol=1e-12)


@pytest.mark.slow
def test_adaptive_agrees_with_diffrax():
    ts = np.linspace(0.0, 1.0, 5)
    ys = solve(lorenz, LORENZ_Y0, ts, LORENZ_ARGS, solver=Dopri5(), rtol=1e-9, atol=1e-9)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lorenz),
        diffrax.Dopri5(),
        0.0,
        1.0,
        None,
        LORENZ_Y0,
        args=LORENZ_ARGS,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-9),
    )
    ref = _scipy_ref(lorenz, LORENZ_Y0, ts, LORENZ_ARGS)
    err_ours = np.abs(np.asarray(ys) - ref).max()
    err_diffrax = np.abs(np.asarray(sol.ys) - ref).max()
    # Different controllers, same tolerance: errors of the same size.
    assert err_ours < 10 * max(err_diffrax, 1e-9)
    np.testing.assert_allclose(ys, sol.ys, rtol=1e-6, atol=1e-6)


def test_leapfrog_energy_bounded():
    w, eps = 1.3, 0.2
    f = lambda t, y, args: (y[1], -(w**2) * y[0] - eps * y[0] ** 3)
    energy = lambda q, p: 0.5 * p**2 + 0.5 * w**2 * q**2 + 0.25 * eps * q**4
    ts = np.linspace(0.0, 200.0, 401)
    errs = []
    for dt in [0.05, 0.025]:
        q, p = solve(f, (jnp.array(1.0), jnp.array(0.0)), ts, None, solver=Leapfrog(), dt=dt)
        e = np.abs(energy(q, p) - energy(q[0], p[0]))
        # Symplectic: the energy error oscillates without drift...
        assert e[-100:].max() < 2 * e[:100].max()
        errs.append(e.max())
    # ...at O(h^2).
    assert 3.0 < errs[0] / errs[1] < 5.0, errs
