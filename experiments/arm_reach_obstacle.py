"""Two-link arm reaches a target around a disc obstacle (iLQR, smooth obstacle penalty).

A planar two-link arm (horizontal plane, no gravity) starts stretched along -y and must
bring its tip to a target with zero velocity; a disc obstacle blocks the direct sweep.
Points along both links pay a smooth obstacle penalty. Reported: final tip error, the
minimum clearance between the links and the obstacle over the motion (> 0: no
collision), iLQR iterations and time. Plots: joint angles and torques, cost, filmstrip.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from diffsim.control import (
    Cost,
    Discretised,
    TwoLinkArm,
    add_costs,
    control_effort,
    ilqr,
    obstacle,
    trajectory,
)

from . import _control_plots as plots


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    dt: float = dataclasses.field(default=0.05, metadata={"min_exclusive": 0})
    horizon: int = dataclasses.field(default=60, metadata={"min": 2})
    target: list[float] = dataclasses.field(default_factory=lambda: [1.2, 1.2])
    obstacle_center: list[float] = dataclasses.field(default_factory=lambda: [1.5, -0.6])
    obstacle_radius: float = dataclasses.field(default=0.35, metadata={"min_exclusive": 0})
    obstacle_weight: float = dataclasses.field(default=50.0, metadata={"min": 0})
    effort_weight: float = dataclasses.field(default=1e-3, metadata={"min": 0})
    ilqr_iterations: int = dataclasses.field(default=150, metadata={"min": 1})


def _link_points(system, x, n=8):
    elbow, tip = system.positions(x)
    s = jnp.linspace(0.0, 1.0, n)[:, None]
    return jnp.concatenate([s * elbow[None], elbow[None] + s[1:] * (tip - elbow)[None]])


def _clearance(system, xs, center, radius):
    pts = jax.vmap(lambda x: _link_points(system, x, 40))(xs)
    return float(jnp.min(jnp.linalg.norm(pts - jnp.asarray(center)[None, None], axis=-1)) - radius)


def run(cfg: Config, run) -> dict:
    system = TwoLinkArm(gravity=0.0, damping=0.1)
    model = Discretised(system, cfg.dt)
    target = jnp.asarray(cfg.target, float)
    center = jnp.asarray(cfg.obstacle_center, float)
    margin = 0.1  # penalise approaches closer than radius + margin

    running = add_costs(
        control_effort(cfg.effort_weight),
        obstacle(
            center,
            cfg.obstacle_radius + margin,
            weight=cfg.obstacle_weight,
            sharpness=30.0,
            points=lambda x: _link_points(system, x),
        ),
    )

    def terminal(x):
        tip = system.positions(x)[1]
        return 200.0 * jnp.sum((tip - target) ** 2) + 10.0 * jnp.sum(x[2:] ** 2)

    cost = Cost(running, terminal)
    x0 = jnp.zeros(4)
    us0 = 0.01 * jax.random.normal(jax.random.key(cfg.seed), (cfg.horizon, 2))
    # ilqr compiles itself: no jit around it, whose input checks would be host callbacks
    # (a program with one is never kept by JAX's persistent compilation cache).
    solve = lambda us: ilqr(model, cost, x0, us, max_iter=cfg.ilqr_iterations, tol=1e-7)
    t0 = time.perf_counter()
    res = jax.block_until_ready(solve(us0))
    t_total = time.perf_counter() - t0
    xs = trajectory(model, x0, res.us)
    tip = system.positions(xs[-1])[1]
    tip_err = float(jnp.linalg.norm(tip - target))
    clearance = _clearance(system, xs, center, cfg.obstacle_radius)
    it = int(res.iterations)
    run.log(
        f"iLQR: cost {float(res.cost):.4g}, {it} iterations, tip error {tip_err:.4f} m, "
        f"clearance {clearance:.3f} m ({t_total:.1f} s with compilation)"
    )

    t = np.arange(cfg.horizon + 1) * cfg.dt
    plots.state_plot(
        run,
        "trajectory.png",
        t,
        {"q1 (rad)": xs[:, 0], "q2 (rad)": xs[:, 1], "torques (N m)": np.asarray(res.us)},
        title="two-link arm reach",
    )
    plots.cost_curves(run, "cost.png", {"iLQR": (np.arange(it + 1), res.history[: it + 1])})

    def background(ax):
        ax.add_patch(plt.Circle(np.asarray(center), cfg.obstacle_radius, color="C3", alpha=0.4))
        ax.plot(*np.asarray(target), "*", color="C2", ms=14)

    plots.filmstrip(
        run,
        "filmstrip.png",
        plots.draw_two_link,
        system,
        xs,
        frames=10,
        xlim=(-2.2, 2.2),
        ylim=(-2.2, 2.2),
        background=background,
        title="reach around the obstacle",
    )
    return {
        "tip_error_m": tip_err,
        "min_clearance_m": clearance,
        "collision_free": clearance > 0,
        "cost": float(res.cost),
        "ilqr_iterations": it,
        "time_with_compile_s": round(t_total, 3),
        "success": bool(tip_err < 0.05 and clearance > 0),
    }
