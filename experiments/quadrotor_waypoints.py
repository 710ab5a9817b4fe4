"""Planar quadrotor flies through waypoints at given times and lands hovering (iLQR).

A time-varying reference: each waypoint is a position the quadrotor must pass at a given
time (a heavy weight on those steps only), with thrust effort measured from hover and
a terminal hover at the last waypoint. Reported: the largest waypoint miss distance, the
final speed, iterations and time. Plots: states and thrusts, cost, filmstrip.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from diffsim.control import Cost, Discretised, PlanarQuadrotor, ilqr, trajectory

from . import _control_plots as plots


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    dt: float = dataclasses.field(default=0.05, metadata={"min_exclusive": 0})
    horizon: int = dataclasses.field(default=100, metadata={"min": 4})
    waypoints: list[list[float]] = dataclasses.field(
        default_factory=lambda: [[1.0, 1.5], [2.5, 0.5], [4.0, 1.5]]
    )
    waypoint_weight: float = dataclasses.field(default=1000.0, metadata={"min": 0})
    effort_weight: float = dataclasses.field(default=0.01, metadata={"min": 0})
    ilqr_iterations: int = dataclasses.field(default=100, metadata={"min": 1})


def run(cfg: Config, run) -> dict:
    system = PlanarQuadrotor()
    model = Discretised(system, cfg.dt)
    hover = system.hover()
    T = cfg.horizon
    wps = jnp.asarray(cfg.waypoints, float)
    k = len(cfg.waypoints)
    # Waypoint j is due at step (j + 1) T / k; the last one at the end (terminal cost).
    due = [int(round((j + 1) * T / k)) for j in range(k)]
    weights = jnp.zeros(T).at[jnp.asarray(due[:-1])].set(cfg.waypoint_weight)
    targets = jnp.zeros((T, 2))
    for j in range(k - 1):
        targets = targets.at[due[j]].set(wps[j])

    def running(x, u, t):
        du = u - hover
        return (
            weights[t] * jnp.sum((x[:2] - targets[t]) ** 2)
            + cfg.effort_weight * du @ du
            + 0.1 * x[2] ** 2
        )

    def terminal(x):
        return cfg.waypoint_weight * jnp.sum((x[:2] - wps[-1]) ** 2) + 100.0 * jnp.sum(x[2:] ** 2)

    cost = Cost(running, terminal)
    x0 = jnp.zeros(6)
    us0 = jnp.tile(hover, (T, 1)) + 0.01 * jax.random.normal(jax.random.key(cfg.seed), (T, 2))
    # ilqr compiles itself: no jit around it, whose input checks would be host callbacks
    # (a program with one is never kept by JAX's persistent compilation cache).
    solve = lambda us: ilqr(model, cost, x0, us, max_iter=cfg.ilqr_iterations, tol=1e-8)
    t0 = time.perf_counter()
    res = jax.block_until_ready(solve(us0))
    t_total = time.perf_counter() - t0
    xs = np.asarray(trajectory(model, x0, res.us))
    misses = [float(np.linalg.norm(xs[d, :2] - np.asarray(wps[j]))) for j, d in enumerate(due)]
    it = int(res.iterations)
    run.log(
        f"iLQR: cost {float(res.cost):.4g} in {it} iterations; waypoint misses "
        + ", ".join(f"{m:.3f}" for m in misses)
        + f" m ({t_total:.1f} s)"
    )
    t = np.arange(T + 1) * cfg.dt
    plots.state_plot(
        run,
        "trajectory.png",
        t,
        {
            "x (m)": xs[:, 0],
            "z (m)": xs[:, 1],
            "pitch (rad)": xs[:, 2],
            "thrusts (N)": np.asarray(res.us),
        },
        title="quadrotor waypoints",
    )
    plots.cost_curves(run, "cost.png", {"iLQR": (np.arange(it + 1), res.history[: it + 1])})

    def background(ax):
        ax.plot(xs[:, 0], xs[:, 1], ":", color="gray")
        w = np.asarray(wps)
        ax.plot(w[:, 0], w[:, 1], "*", color="C3", ms=12)

    plots.filmstrip(
        run,
        "filmstrip.png",
        plots.draw_quadrotor,
        system,
        xs,
        frames=16,
        xlim=(-0.5, 4.8),
        ylim=(-0.5, 2.3),
        background=background,
        title="quadrotor through waypoints",
    )
    return {
        "max_waypoint_miss_m": max(misses),
        "final_speed_mps": float(np.linalg.norm(xs[-1, 3:5])),
        "cost": float(res.cost),
        "ilqr_iterations": it,
        "time_with_compile_s": round(t_total, 3),
        "success": bool(max(misses) < 0.05),
    }
