"""Robertson's stiff kinetics with Kvaerno5: solution, step sizes, gradients wrt the rates.

Robertson's three-species reaction (rates k1 = 0.04, k2 = 3e7, k3 = 1e4) is the standard
stiff test: time scales from 1e-8 to 1e5. The implicit ESDIRK solver `Kvaerno5` follows it
from t = 0 to t_end with steps that grow by eleven orders of magnitude; the solution is
compared with scipy's Radau at rtol 1e-12, and the gradient of the final concentrations
with respect to log k (BPTT through the accepted steps, implicit-function-theorem
adjoint for every Newton solve) is compared with central finite differences.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from diffsim.ode import Kvaerno5, solve


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    t_end: float = dataclasses.field(default=1e5, metadata={"min_exclusive": 0})
    rates: list[float] = dataclasses.field(default_factory=lambda: [0.04, 3e7, 1e4])
    rtol: float = dataclasses.field(default=1e-8, metadata={"min_exclusive": 0})
    atol: float = dataclasses.field(default=1e-14, metadata={"min_exclusive": 0})
    max_steps: int = dataclasses.field(default=1000, metadata={"min": 1})
    n_out: int = dataclasses.field(default=40, metadata={"min": 2, "max": 1000})
    fd_eps: float = dataclasses.field(default=1e-4, metadata={"min_exclusive": 0})
    grad_rtol: float = dataclasses.field(
        default=1e-11, metadata={"min_exclusive": 0, "help": "rtol of the gradient solves"}
    )

    def __post_init__(self):
        if len(self.rates) != 3 or min(self.rates) <= 0:
            raise ValueError(f"key 'rates' must be three positive rates, got {self.rates}")


def robertson(t, y, k, xp=jnp):
    """dy/dt of Robertson's kinetics; `xp` = numpy gives the reference's field."""
    return xp.stack(
        [
            -k[0] * y[0] + k[2] * y[1] * y[2],
            k[0] * y[0] - k[1] * y[1] ** 2 - k[2] * y[1] * y[2],
            k[1] * y[1] ** 2,
        ]
    )


def robertson_jac(y, k):
    return np.array(
        [
            [-k[0], k[2] * y[2], k[2] * y[1]],
            [k[0], -2 * k[1] * y[1] - k[2] * y[2], -k[2] * y[1]],
            [0.0, 2 * k[1] * y[1], 0.0],
        ]
    )


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt
    from scipy.integrate import solve_ivp

    k = jnp.asarray(cfg.rates)
    y0 = jnp.array([1.0, 0.0, 0.0])
    ts = jnp.concatenate([jnp.zeros(1), jnp.logspace(-6, np.log10(cfg.t_end), cfg.n_out - 1)])

    sol = jax.jit(
        lambda k: solve(
            robertson,
            y0,
            ts,
            k,
            solver=Kvaerno5(),
            rtol=cfg.rtol,
            atol=cfg.atol,
            max_steps=cfg.max_steps,
            solution=True,
        )
    )(k)
    kn = np.asarray(cfg.rates)
    ref = solve_ivp(
        lambda t, y: robertson(t, y, kn, xp=np),
        (0.0, cfg.t_end),
        np.asarray(y0),
        method="Radau",
        t_eval=np.asarray(ts),
        rtol=1e-12,
        atol=1e-20,
        jac=lambda t, y: robertson_jac(y, kn),
    )
    ys = np.asarray(sol.ys)
    rel = np.abs(ys[1:] - ref.y.T[1:]) / np.abs(ref.y.T[1:])
    t_steps = np.asarray(sol.t_steps)
    t_steps = t_steps[np.isfinite(t_steps)]
    hs = np.diff(t_steps)
    run.log(
        f"Kvaerno5: {int(sol.accepted)} steps ({int(sol.rejected)} rejected), "
        f"{int(sol.nfev)} f and {int(sol.njev)} Jacobian evaluations; scipy Radau "
        f"(rtol 1e-12) {len(ref.t)} output points; max relative error {rel.max():.2e}; "
        f"step sizes {hs.min():.2e} .. {hs.max():.2e}"
    )

    @jax.jit
    def final(logk):
        return solve(
            robertson,
            y0,
            jnp.array([0.0, cfg.t_end]),
            jnp.exp(logk),
            solver=Kvaerno5(newton_tol=1e-4),
            rtol=cfg.grad_rtol,
            atol=cfg.atol * 1e-2,
            max_steps=4 * cfg.max_steps,
        )[-1]

    logk = jnp.log(k)
    jac = np.asarray(jax.jacrev(final)(logk))
    e = cfg.fd_eps
    fd = np.stack(
        [np.asarray(final(logk + e * v) - final(logk - e * v)) / (2 * e) for v in jnp.eye(3)], 1
    )
    grad_err = float(np.max(np.abs(jac - fd) / np.abs(fd).max(1, keepdims=True)))
    run.log(f"d y(t_end) / d log k:\n{jac}\nfinite differences:\n{fd}\nrelative gap {grad_err:.2e}")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, (lab, sc) in enumerate([("y1", 1.0), ("y2 x 1e4", 1e4), ("y3", 1.0)]):
        axes[0].semilogx(np.asarray(ts[1:]), sc * ys[1:, i], "o", ms=3, label=f"{lab} Kvaerno5")
        axes[0].semilogx(ref.t[1:], sc * ref.y[i, 1:], "-", lw=1, color="k")
    axes[0].set_xlabel("t (s)")
    axes[0].set_ylabel("concentration (mol/L)")
    axes[0].set_title("Robertson: Kvaerno5 (dots), scipy Radau (lines)")
    axes[0].legend()
    axes[1].loglog(t_steps[1:], hs, ".-")
    axes[1].set_xlabel("t (s)")
    axes[1].set_ylabel("accepted step size h (s)")
    axes[1].set_title(f"{len(hs)} steps, rtol {cfg.rtol:g}")
    x = np.arange(3)
    for i in range(3):
        axes[2].bar(x + 0.25 * i, np.abs(jac[i]), 0.25, label=f"|d y{i + 1} / d log k| (AD)")
        axes[2].plot(x + 0.25 * i, np.abs(fd[i]), "k_", ms=14)
    axes[2].set_yscale("log")
    axes[2].set_xticks(x + 0.25, ["k1", "k2", "k3"])
    axes[2].set_ylabel("|sensitivity| (mol/L per unit log k)")
    axes[2].set_title(f"at t = {cfg.t_end:g} s; finite differences as black ticks")
    axes[2].legend(fontsize=8)
    run.save_figure(fig, "robertson.png")
    return {
        "accepted_steps": int(sol.accepted),
        "rejected_steps": int(sol.rejected),
        "nfev": int(sol.nfev),
        "njev": int(sol.njev),
        "max_rel_error_vs_radau": float(rel.max()),
        "step_size_min": float(hs.min()),
        "step_size_max": float(hs.max()),
        "grad_rel_error_vs_fd": grad_err,
        "mass_error": float(np.abs(ys.sum(1) - 1).max()),
    }
