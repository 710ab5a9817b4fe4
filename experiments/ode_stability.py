"""An RNN is forward Euler: exploding gradients are an unstable step size.

The recurrent network h_{t+1} = h_t + dt * tanh(W h_t) is one Euler step of
dh/dt = tanh(W h). At the fixed point h = 0 its Jacobian is I + dt W, so over T steps the
gradient dh_T/dh_0 has norm max_i |R(dt lambda_i)|^T with R the solver's stability
function (R(z) = 1 + z for Euler). Over a grid of step sizes dt and eigenvalue angles of
W, this experiment measures the gradient norm by backpropagation through the rollout and
plots it over the z = dt lambda plane together with the stability boundary |R(z)| = 1.
The same recurrence with other solvers' updates (e.g. RK4) shows their larger regions.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

import diffsim
from diffsim import ode

SOLVERS = {"euler": ode.Euler, "midpoint": ode.Midpoint, "heun": ode.Heun, "rk4": ode.RK4}


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    hidden: int = dataclasses.field(default=8, metadata={"min": 2, "max": 256})
    steps: int = dataclasses.field(default=100, metadata={"min": 1, "max": 100_000})
    n_dt: int = dataclasses.field(default=40, metadata={"min": 2, "max": 400})
    dt_min: float = dataclasses.field(default=0.05, metadata={"min_exclusive": 0})
    dt_max: float = dataclasses.field(default=4.0, metadata={"min_exclusive": 0})
    n_angles: int = dataclasses.field(default=25, metadata={"min": 2, "max": 400})
    solvers: list[Literal["euler", "midpoint", "heun", "rk4"]] = dataclasses.field(
        default_factory=lambda: ["euler", "rk4"]
    )
    margin: float = dataclasses.field(
        default=0.05,
        metadata={"min": 0, "max": 0.5, "help": "|R| band around 1 excluded from the verdict"},
    )

    def __post_init__(self):
        if self.dt_min >= self.dt_max:
            raise ValueError(f"key 'dt_min' ({self.dt_min}) must be < 'dt_max' ({self.dt_max})")
        if not self.solvers:
            raise ValueError("key 'solvers' must name at least one solver")


def spectrum_matrix(angle, hidden, key):
    """A real W whose eigenvalues are exp(+-i angle) (unit modulus), orthogonally mixed."""
    a, b = jnp.cos(angle), jnp.sin(angle)
    block = jnp.array([[a, -b], [b, a]])
    B = jnp.kron(jnp.eye(hidden // 2), block)
    if hidden % 2:
        B = jax.scipy.linalg.block_diag(B, jnp.array([[a]]))
    Q, _ = jnp.linalg.qr(jax.random.normal(key, (hidden, hidden)))
    return Q @ B @ Q.T


def gradient_norm(solver, W, dt, steps):
    """||d h_T / d h_0||_2 of the RNN h <- solver.step(tanh(W h)) at h_0 = 0, by BPTT."""
    f = lambda t, h, W: jnp.tanh(W @ h)

    def final(h0):
        step = lambda h, _: (solver.step(f, 0.0, h, W, dt), None)
        return diffsim.rollout(step, h0, length=steps)[0]

    J = jax.jacrev(final)(jnp.zeros(W.shape[0]))
    return jnp.linalg.norm(J, 2)


def measure(cfg: Config, solver_name: str):
    solver = SOLVERS[solver_name]()
    key = jax.random.key(cfg.seed)
    dts = jnp.asarray(np.geomspace(cfg.dt_min, cfg.dt_max, cfg.n_dt))
    # Angles of the eigenvalue pair in the left half plane, from the real axis (pi) up.
    angles = jnp.linspace(np.pi / 2 + 0.02, np.pi, cfg.n_angles)
    Ws = jax.vmap(lambda a: spectrum_matrix(a, cfg.hidden, key))(angles)
    grid = jax.jit(
        jax.vmap(
            jax.vmap(lambda W, dt: gradient_norm(solver, W, dt, cfg.steps), (None, 0)), (0, None)
        )
    )
    G = np.asarray(grid(Ws, dts))  # (angles, dts)
    z = np.exp(1j * np.asarray(angles))[:, None] * np.asarray(dts)[None, :]
    R = np.abs(np.asarray(ode.stability_function(solver, jnp.asarray(z))))
    return z, R, G


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    # The RNN update is exactly an Euler step.
    W = spectrum_matrix(2.5, cfg.hidden, jax.random.key(cfg.seed))
    h = jnp.linspace(-1.0, 1.0, cfg.hidden)
    euler = ode.Euler().step(lambda t, h, W: jnp.tanh(W @ h), 0.0, h, W, 0.3)
    assert jnp.allclose(euler, h + 0.3 * jnp.tanh(W @ h), rtol=1e-12, atol=1e-12)

    metrics: dict = {}
    fig, axes = plt.subplots(
        1, len(cfg.solvers), figsize=(5.2 * len(cfg.solvers), 4.4), squeeze=False
    )
    for ax, name in zip(axes[0], cfg.solvers):
        z, R, G = measure(cfg, name)
        rate = np.log(np.maximum(G, 1e-300)) / cfg.steps  # measured growth per step
        theory = np.log(np.maximum(R, 1e-300))
        outside = R > 1 + cfg.margin
        inside = R < 1 - cfg.margin
        # Outside: the gradient grows like |R|^T. Inside: it stays bounded (<= 1 here,
        # since W is normal, up to round-off).
        grows = rate[outside] >= 0.9 * theory[outside]
        bounded = G[inside] <= 1.0 + 1e-6
        metrics[f"{name}_points_outside"] = int(outside.sum())
        metrics[f"{name}_points_inside"] = int(inside.sum())
        metrics[f"{name}_fraction_exploding_outside"] = float(grows.mean()) if grows.size else 1.0
        metrics[f"{name}_fraction_bounded_inside"] = float(bounded.mean()) if bounded.size else 1.0
        metrics[f"{name}_max_rate_error_outside"] = float(
            np.max(np.abs(rate[outside] - theory[outside])) if outside.any() else 0.0
        )
        metrics[f"{name}_max_log10_grad_norm"] = float(np.log10(G.max()))
        run.log(
            f"{name}: {outside.sum()} grid points outside the stability region, "
            f"{grows.mean():.3f} of them with exploding gradients; "
            f"{inside.sum()} inside, {bounded.mean():.3f} bounded"
        )

        zs = np.concatenate([z, z.conj()])
        Gs = np.concatenate([G, G])
        sc = ax.scatter(
            zs.real,
            zs.imag,
            c=np.log10(np.maximum(Gs, 1e-30)),
            cmap="coolwarm",
            s=9,
            vmin=-6,
            vmax=6,
        )
        X, Y = np.meshgrid(np.linspace(-4.5, 0.8, 300), np.linspace(-4.2, 4.2, 300))
        Rg = np.abs(np.asarray(ode.stability_function(SOLVERS[name](), jnp.asarray(X + 1j * Y))))
        ax.contour(X, Y, Rg, levels=[1.0], colors="k", linewidths=1.5)
        ax.set_title(f"{name}: log10 ||dh_T/dh_0||, T={cfg.steps}; |R(z)|=1 in black")
        ax.set_xlabel("Re(dt lambda)")
        ax.set_ylabel("Im(dt lambda)")
        ax.set_aspect("equal")
        logG = np.log10(np.maximum(Gs, 1e-30))
        clipped = {(False, False): "neither", (True, False): "min", (False, True): "max"}.get(
            (bool(logG.min() < -6), bool(logG.max() > 6)), "both"
        )
        bar = fig.colorbar(sc, ax=ax, shrink=0.8, extend=clipped)
        bar.set_label("log10 ||dh_T/dh_0||" + ("" if clipped == "neither" else " (clipped to ±6)"))
    run.save_figure(fig, "stability_gradients.png")
    return metrics
