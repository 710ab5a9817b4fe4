"""Stability functions R(z): definition, closed forms, growth of y' = lambda y."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from ode_registry import RK_SOLVERS, name

from diffsim.ode import (
    RK4,
    Dopri5,
    Euler,
    Leapfrog,
    SymplecticEuler,
    is_stable,
    plot_stability_regions,
    real_stability_boundary,
    stability_function,
    stability_region,
)

Z = np.array([-2.5 + 0.3j, -1.0 + 1.0j, 0.2 - 0.7j, -0.1 + 2.5j, -3.0 + 0.0j])


@pytest.mark.parametrize("solver", RK_SOLVERS, ids=name)
def test_rk_stability_function_is_one_step_on_linear_problem(solver):
    # Definition: one step with h = 1 on y' = z y multiplies y by R(z).
    y1 = solver.step(lambda t, y, z: z * y, 0.0, jnp.ones_like(Z), jnp.asarray(Z), 1.0)
    np.testing.assert_allclose(y1, stability_function(solver, Z), rtol=1e-13)
    # Consistency with exp(z) to the method's order: the Taylor coefficients.
    coeffs = solver.tableau.stability_polynomial()
    np.testing.assert_allclose(
        coeffs[: solver.order + 1], [1 / math.factorial(k) for k in range(solver.order + 1)]
    )


def test_closed_forms():
    z = Z
    np.testing.assert_allclose(
        stability_function(RK4(), z), 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    )
    np.testing.assert_allclose(stability_function(Euler(), z), 1 + z)
    taylor5 = sum(z**k / math.factorial(k) for k in range(6))
    np.testing.assert_allclose(stability_function(Dopri5(), z), taylor5 + z**6 / 600)
    assert abs(real_stability_boundary(Euler()) + 2.0) < 1e-9
    assert abs(real_stability_boundary(RK4()) + 2.785293563405) < 1e-9


@pytest.mark.parametrize("solver", [Euler(), RK4()], ids=name)
def test_empirical_growth_matches_is_stable(solver):
    from diffsim.ode import solve

    h = 0.1
    lams = np.array([-5.0, -19.0, -21.0, -27.0, -28.5, -2.0 + 20.0j, -1.0 + 5.0j])
    stable = np.asarray(is_stable(solver, h, lams))
    f = lambda t, y, lam: lam * y
    ys = solve(
        f,
        jnp.ones(len(lams), complex),
        np.array([0.0, 200 * h]),
        jnp.asarray(lams),
        solver=solver,
        dt=h,
    )
    grew = np.abs(np.asarray(ys[-1])) > 1.0
    np.testing.assert_array_equal(grew, ~stable)
    # |y_N| = |R(h lam)|^N exactly.
    np.testing.assert_allclose(
        np.abs(ys[-1]), np.abs(np.asarray(stability_function(solver, h * lams))) ** 200, rtol=1e-9
    )


@pytest.mark.parametrize("solver", [SymplecticEuler(), Leapfrog()], ids=name)
def test_symplectic_oscillator_stability(solver):
    from diffsim.ode import solve

    h = 0.1
    omegas = np.array([5.0, 15.0, 19.5, 20.5, 25.0])
    stable = np.asarray(is_stable(solver, h, 1j * omegas))
    # Both are stable exactly for h omega < 2 on the harmonic oscillator.
    np.testing.assert_array_equal(stable, h * omegas < 2)
    f = lambda t, y, w: (y[1], -(w**2) * y[0])
    ts = np.linspace(0.0, 10.0, 101)  # one step between saved times
    q, p = solve(f, (jnp.ones(5), jnp.zeros(5)), ts, jnp.asarray(omegas), solver=solver, dt=h)
    energy = np.asarray(p) ** 2 + omegas**2 * np.asarray(q) ** 2
    # A stable orbit is bounded (both halves sweep the same invariant ellipse); an
    # unstable one grows like |mu|^n.
    ratio = energy[50:].max(0) / energy[:50].max(0)
    np.testing.assert_array_equal(ratio > 100, ~stable)
    assert np.all(ratio[stable] < 2)


def test_region_grid_and_plot():
    x, y, r = stability_region(Euler(), re=(-3, 1), im=(-2, 2), n=41)
    assert r.shape == (41, 41)
    # Euler's region is the disc |1 + z| <= 1.
    zz = x[None, :] + 1j * y[:, None]
    np.testing.assert_array_equal(r <= 1, np.abs(1 + zz) <= 1)
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_stability_regions([Euler(), RK4(), Leapfrog()], n=41)
    assert len(ax.get_legend().get_texts()) == 3


def test_is_stable_rejects_bad_h():
    with pytest.raises(ValueError, match="h"):
        is_stable(RK4(), 0.0, -1.0)
