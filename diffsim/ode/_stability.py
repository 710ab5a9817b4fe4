"""Linear stability: the stability function R(z), z = h lambda, its region, and a plot.

One step of an explicit Runge-Kutta method on y' = lambda y multiplies y by R(h lambda),
a polynomial; the step is stable when |R(h lambda)| <= 1. The partitioned symplectic
solvers have no scalar R: for them `stability_function` gives the spectral radius of
the one-step matrix on the test oscillator q' = p, p' = z^2 q (eigenvalues +-z; z = i h
omega for a harmonic oscillator of frequency omega), so |R| <= 1 still means stable.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ._base import AbstractExplicitRK, AbstractReversibleSolver, AbstractSolver


def stability_function(solver: AbstractSolver, z):
    """Gives R(z) of `solver` at complex z = h * lambda (any shape).

    **Arguments:**

    - `solver`: an explicit Runge-Kutta solver (Euler, Midpoint, Heun, RK4, Dopri5) or a
      symplectic one (Leapfrog, SymplecticEuler; see the module docstring).
    - `z`: complex array, h times the eigenvalue.

    **Returns:** complex R(z) for Runge-Kutta solvers, the (real) spectral radius of the
    one-step matrix for symplectic ones; same shape as z.

    **Example:** `stability_function(RK4(), -2.0 + 0j)` is 1 - 2 + 2 - 4/3 + 2/3 = 1/3.
    """
    if isinstance(solver, AbstractExplicitRK):
        return solver.stability_function(z)
    if isinstance(solver, AbstractReversibleSolver):
        z = jnp.asarray(z)
        return _partitioned_radius(solver, z.astype(jnp.result_type(z, 1j)))
    raise TypeError(f"stability_function: no stability function for {type(solver).__name__}")


def _partitioned_radius(solver, z):
    z2 = z**2
    f = lambda t, y, a: (y[1], a * y[0])
    one, zero = jnp.ones_like(z), jnp.zeros_like(z)
    # Columns of the one-step matrix: the step applied to the unit vectors, h = 1.
    q1, p1 = solver.step(f, 0.0, (one, zero), z2, 1.0)
    q2, p2 = solver.step(f, 0.0, (zero, one), z2, 1.0)
    tr = q1 + p2
    det = q1 * p2 - q2 * p1
    disc = jnp.sqrt(tr**2 - 4 * det)
    return jnp.maximum(jnp.abs((tr + disc) / 2), jnp.abs((tr - disc) / 2))


def is_stable(solver: AbstractSolver, h, lam, *, tol: float = 1e-12):
    """Gives whether a step of size `h` is linearly stable for the eigenvalue `lam`.

    True where |R(h lam)| <= 1 + tol (arrays broadcast). For symplectic solvers `lam`
    is an eigenvalue of the oscillator (i omega for frequency omega).

    **Example:** `is_stable(Euler(), 0.1, -25.0)` is False (h lam = -2.5 < -2).
    """
    h = np.asarray(h, dtype=float)
    if np.any(h <= 0):
        raise ValueError(f"is_stable: h must be > 0, got h={h}")
    z = h * np.asarray(lam, dtype=complex)
    return jnp.abs(stability_function(solver, z)) <= 1 + tol


def stability_region(solver: AbstractSolver, *, re=(-5.0, 1.0), im=(-4.0, 4.0), n: int = 301):
    """Gives a grid of |R(z)| over a rectangle of the complex z = h lambda plane.

    **Arguments:**

    - `re`, `im`: (min, max) of the real and imaginary parts.
    - `n`: points per axis.

    **Returns:** `(x, y, absR)` numpy arrays, x and y of shape (n,), absR of shape (n, n)
    indexed [imag, real]; the stable region is absR <= 1 (contour level 1).
    """
    if n < 2:
        raise ValueError(f"stability_region: n must be >= 2, got {n}")
    x = np.linspace(re[0], re[1], n)
    y = np.linspace(im[0], im[1], n)
    z = x[None, :] + 1j * y[:, None]
    return x, y, np.asarray(jnp.abs(stability_function(solver, z)))


def real_stability_boundary(solver: AbstractSolver, *, lo: float = -10.0) -> float:
    """Gives the left end of the stability interval on the negative real axis (e.g. -2 for Euler).

    Found by bisection between `lo` (assumed unstable) and 0 on |R(x)| <= 1.
    """
    stable = lambda x: float(jnp.abs(stability_function(solver, complex(x, 0.0)))) <= 1 + 1e-12
    if stable(lo):
        raise ValueError(f"real_stability_boundary: still stable at lo={lo}; pass a smaller lo")
    a, b = lo, -1e-9
    for _ in range(80):
        mid = 0.5 * (a + b)
        a, b = (a, mid) if stable(mid) else (mid, b)
    return b


def plot_stability_regions(solvers, *, ax=None, re=(-5.0, 1.0), im=(-4.0, 4.0), n: int = 301):
    """Draws the boundary |R(z)| = 1 of each solver's region on a matplotlib axis.

    Needs matplotlib (imported here, not at package import). Returns the axis.
    """
    import matplotlib

    if ax is None:
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5, 5))
    for k, solver in enumerate(solvers):
        x, y, r = stability_region(solver, re=re, im=im, n=n)
        ax.contour(x, y, r, levels=[1.0], colors=[f"C{k}"])
        ax.plot([], [], color=f"C{k}", label=type(solver).__name__)
    ax.axhline(0, color="0.7", lw=0.5)
    ax.axvline(0, color="0.7", lw=0.5)
    ax.set_xlabel("Re(h lambda)")
    ax.set_ylabel("Im(h lambda)")
    ax.set_aspect("equal")
    ax.legend()
    return ax
