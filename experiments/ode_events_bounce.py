"""A bouncing ball by events: bounce times and their gradients against the analytic ones.

A ball dropped from height h0 falls under gravity g; at every impact (x = 0, moving down)
an `Event` reverses its velocity times the restitution e and the solve continues. The
bounce times are t_1 = sqrt(2 h0 / g), t_{k+1} = t_k + 2 e^k sqrt(2 g h0) / g. Each event
time is the root of x on the step's interpolant, differentiated by the implicit function
theorem, so d t_k / d h0 and d t_k / d e (through the jumps) come out exact. The run
compares them with the analytic derivatives for Dopri5 and Kvaerno5 and plots the
trajectory from the dense interpolant.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from diffsim.ode import Dopri5, Event, Kvaerno5, solve


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    height: float = dataclasses.field(default=2.0, metadata={"min_exclusive": 0, "help": "m"})
    restitution: float = dataclasses.field(default=0.8, metadata={"min_exclusive": 0, "max": 1})
    gravity: float = dataclasses.field(default=9.81, metadata={"min_exclusive": 0, "help": "m/s^2"})
    bounces: int = dataclasses.field(default=10, metadata={"min": 1, "max": 200})
    rtol: float = dataclasses.field(default=1e-8, metadata={"min_exclusive": 0})
    atol: float = dataclasses.field(default=1e-10, metadata={"min_exclusive": 0})
    max_steps: int = dataclasses.field(default=400, metadata={"min": 1})
    solvers: list[Literal["dopri5", "kvaerno5"]] = dataclasses.field(
        default_factory=lambda: ["dopri5", "kvaerno5"]
    )

    def __post_init__(self):
        if not self.solvers:
            raise ValueError("key 'solvers' must name at least one solver")


def analytic_times(p, g, n):
    h0, e = p[0], p[1]
    k = jnp.arange(n)
    return jnp.cumsum(jnp.where(k == 0, jnp.sqrt(2 * h0 / g), 2 * e**k * jnp.sqrt(2 * g * h0) / g))


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    g, n = cfg.gravity, cfg.bounces
    p = jnp.array([cfg.height, cfg.restitution])
    exact = analytic_times(p, g, n + 1)
    # end halfway between the n-th and the (n+1)-th bounce
    t_end = float(0.5 * (exact[n - 1] + exact[n]))
    field = lambda t, y, a: jnp.stack([y[1], -g * jnp.ones_like(y[0])])
    event = Event(
        lambda t, y, a: y[0],
        jump=lambda t, y, a: jnp.stack([y[0], -a * y[1]]),
        direction=-1,
        max_events=n + 1,
    )

    def solution(p, solver):
        return solve(
            field,
            jnp.stack([p[0], jnp.zeros_like(p[0])]),
            jnp.array([0.0, t_end]),
            p[1],
            solver=solver,
            event=event,
            rtol=cfg.rtol,
            atol=cfg.atol,
            max_steps=cfg.max_steps,
            dense=True,
        )

    metrics: dict = {}
    jac_exact = np.asarray(jax.jacobian(lambda p: analytic_times(p, g, n))(p))
    sols, jacs = {}, {}
    all_solvers = {"dopri5": Dopri5(), "kvaerno5": Kvaerno5()}
    for name in cfg.solvers:
        solver = all_solvers[name]
        sol = jax.jit(solution, static_argnums=1)(p, solver)
        sols[name] = sol
        times = jax.jit(lambda p, s=solver: solution(p, s).t_events[:n])
        jac = jacs[name] = np.asarray(jax.jacrev(times)(p))
        t_err = float(np.max(np.abs(np.asarray(sol.t_events[:n]) - np.asarray(exact[:n]))))
        j_err = float(np.max(np.abs(jac - jac_exact) / np.abs(jac_exact).max(0)))
        metrics[f"{name}_events"] = int(sol.n_events)
        metrics[f"{name}_steps"] = int(sol.accepted)
        metrics[f"{name}_max_time_error"] = t_err
        metrics[f"{name}_max_grad_rel_error"] = j_err
        run.log(
            f"{name}: {int(sol.n_events)} bounces in {int(sol.accepted)} steps; bounce times "
            f"within {t_err:.1e} s of the analytic ones; d t_k / d (h0, e) within {j_err:.1e} "
            "(relative)"
        )
    metrics["dt10_dh0"] = float(jac_exact[-1, 0])
    metrics["dt10_de"] = float(jac_exact[-1, 1])

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    first = cfg.solvers[0]
    sol = sols[first]
    tq = jnp.linspace(0.0, t_end, 2000)
    xq = np.asarray(jax.vmap(sol.evaluate)(tq))[:, 0]
    axes[0].plot(np.asarray(tq), xq, lw=1.2, label=f"dense interpolant ({first})")
    axes[0].plot(np.asarray(sol.t_events[:n]), np.zeros(n), "rv", label="events")
    axes[0].set_xlabel("t (s)")
    axes[0].set_ylabel("height x (m)")
    axes[0].set_title(f"h0 = {cfg.height} m, e = {cfg.restitution}")
    axes[0].legend()
    k = np.arange(1, n + 1)
    jac = jacs[first]
    axes[1].plot(k, jac[:, 0], "o", label="d t_k / d h0 (s/m), events")
    axes[1].plot(k, jac_exact[:, 0], "k-", lw=0.8, label="analytic")
    axes[1].plot(k, jac[:, 1], "s", label="d t_k / d e (s), events")
    axes[1].plot(k, jac_exact[:, 1], "k--", lw=0.8, label="analytic")
    axes[1].set_xlabel("bounce k")
    axes[1].set_ylabel("derivative of the bounce time")
    axes[1].legend(fontsize=8)
    run.save_figure(fig, "bounces.png")
    return metrics
