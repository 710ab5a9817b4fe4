"""Registry of diffsim.ode solvers and test problems, parametrized into the generic tests."""

import jax.numpy as jnp
import numpy as np

from diffsim.ode import RK4, Dopri5, Euler, Heun, Leapfrog, Midpoint, SymplecticEuler

RK_SOLVERS = [Euler(), Midpoint(), Heun(), RK4(), Dopri5()]
SYMPLECTIC_SOLVERS = [SymplecticEuler(), Leapfrog()]
ALL_SOLVERS = RK_SOLVERS + SYMPLECTIC_SOLVERS


def name(solver):
    return type(solver).__name__


# --- general (non-autonomous, nonlinear) problem for Runge-Kutta solvers -------------
# y' = k cos(t) y + (1 - y^2)/4 componentwise is not solvable in closed form, so the
# convergence tests use y' = k cos(t) y, y = y0 exp(k sin t), and a pytree state.


def rk_field(t, y, k):
    return {"a": k * jnp.cos(t) * y["a"], "b": -k * y["b"] * jnp.sin(t)}


def rk_exact(t, y0, k):
    a, b = np.asarray(y0["a"]), np.asarray(y0["b"])
    return {"a": a * np.exp(k * np.sin(t)), "b": b * np.exp(k * (np.cos(t) - 1))}


RK_Y0 = {"a": jnp.array([1.0, 0.5]), "b": jnp.array(2.0)}

# --- separable Hamiltonian: nonlinear oscillator H = p^2/2 + w^2 q^2/2 + eps q^4/4 -------


def ham_field(t, y, args):
    q, p = y
    w, eps = args
    return (p, -(w**2) * q - eps * q**3)


def harmonic_exact(t, q0, p0, w):
    return q0 * np.cos(w * t) + p0 / w * np.sin(w * t), -q0 * w * np.sin(w * t) + p0 * np.cos(w * t)


HAM_Y0 = (jnp.array([1.0, -0.5]), jnp.array([0.0, 0.3]))


def problem_for(solver):
    """(field, y0, args, as-vector) for the solver's family."""
    if isinstance(solver, (SymplecticEuler, Leapfrog)):
        return ham_field, HAM_Y0, (jnp.array(1.3), jnp.array(0.2))
    return rk_field, RK_Y0, jnp.array(0.7)


def lorenz(t, y, args):
    sigma, rho, beta = args
    x, yy, z = y[0], y[1], y[2]
    return jnp.stack([sigma * (yy - x), x * (rho - z) - yy, x * yy - beta * z])


LORENZ_ARGS = jnp.array([10.0, 28.0, 8.0 / 3.0])
LORENZ_Y0 = jnp.array([1.0, 1.0, 1.0])

STIFF_A = np.array([[-20.0, 1.0, 0.0], [1.0, -2.0, 1.0], [0.0, 1.0, -0.5]])


def linear(t, y, A):
    return A @ y
