"""Finite-horizon discrete LQR by the Riccati recursion, and linearisation of a model."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._custom_types import Array, Float


class LQRSolution(NamedTuple):
    """What `lqr` gives: u_t = -gains[t] x_t minimises sum_t x'Qx + u'Ru + x_T' Qf x_T."""

    gains: Float[Array, "T m n"]
    """K_0..K_{T-1}."""
    values: Float[Array, "T1 n n"]
    """P_0..P_T: the optimal cost-to-go from x at step t is x' P_t x."""


def lqr(A, B, Q, R, Qf, horizon: int) -> LQRSolution:
    """Gives the finite-horizon discrete LQR gains by the backward Riccati recursion.

        P_T = Qf,  K_t = (R + B'P_{t+1}B)^{-1} B'P_{t+1}A,  P_t = Q + A'P_{t+1}(A - B K_t).

    For x_{t+1} = A x_t + B u_t and J = sum_{t<T} (x_t'Q x_t + u_t'R u_t) + x_T'Qf x_T.
    As `horizon` grows, P_0 tends to the solution of the discrete algebraic Riccati
    equation (`scipy.linalg.solve_discrete_are`).

    **Arguments:** `A (n, n)`, `B (n, m)`, `Q (n, n)`, `R (m, m)` positive definite,
    `Qf (n, n)`, `horizon` T >= 1.

    **Raises:** `ValueError` on mismatched shapes or `horizon < 1`.

    **Example:** `K = lqr(A, B, Q, R, Q, 100).gains[0]`
    """
    A, B, Q, R, Qf = (jnp.asarray(M, float) for M in (A, B, Q, R, Qf))
    n, m = B.shape if B.ndim == 2 else (None, None)
    if (
        n is None
        or A.shape != (n, n)
        or Q.shape != (n, n)
        or Qf.shape != (n, n)
        or R.shape != (m, m)
    ):
        raise ValueError(
            f"lqr: need A (n,n), B (n,m), Q (n,n), R (m,m), Qf (n,n); got A {A.shape}, "
            f"B {B.shape}, Q {Q.shape}, R {R.shape}, Qf {Qf.shape}"
        )
    if not (isinstance(horizon, int) and horizon >= 1):
        raise ValueError(f"lqr: horizon must be an int >= 1, got {horizon!r}")

    def body(P, _):
        K = jnp.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P_new = Q + A.T @ P @ (A - B @ K)
        return (P_new + P_new.T) / 2, (K, P)

    P0, (Ks, Ps) = jax.lax.scan(body, Qf, None, length=horizon, reverse=True)
    return LQRSolution(gains=Ks, values=jnp.concatenate([P0[None], Ps]))


def linearise(model, x, u) -> tuple[Float[Array, "n n"], Float[Array, "n m"]]:
    """Gives the Jacobians (A, B) = (dF/dx, dF/du) of a discrete model at (x, u)."""
    return jax.jacfwd(model, argnums=(0, 1))(x, u)
