"""Car parking: a kinematic bicycle model drives nose-in into a slot between two parked cars.

The car starts in the aisle, driving along +x, and must end in the slot facing -y
(perpendicular, nose-in parking), at rest; iLQR finds the manoeuvre. The parked
neighbours are smooth disc penalties on points along the car's centre line; steering is
smoothly saturated. Reported: final position and heading errors, final speed, the
minimum clearance of the car's centre line to the neighbours, iterations and time.
Plots: path and controls, cost, filmstrip.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from diffsim.control import (
    BicycleCar,
    Cost,
    Discretised,
    add_costs,
    control_effort,
    ilqr,
    obstacle,
    terminal_quadratic,
    trajectory,
)

from . import _control_plots as plots


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    dt: float = dataclasses.field(default=0.1, metadata={"min_exclusive": 0})
    horizon: int = dataclasses.field(default=80, metadata={"min": 2})
    start: list[float] = dataclasses.field(default_factory=lambda: [-8.0, 5.0, 0.0, 0.0])
    neighbour_gap: float = dataclasses.field(
        default=2.9, metadata={"min_exclusive": 0, "help": "m"}
    )
    neighbour_radius: float = dataclasses.field(default=1.0, metadata={"min_exclusive": 0})
    obstacle_weight: float = dataclasses.field(default=20.0, metadata={"min": 0})
    slot_depth: float = dataclasses.field(default=3.5, metadata={"help": "rear axle y at rest (m)"})
    ilqr_iterations: int = dataclasses.field(default=200, metadata={"min": 1})


def _body_points(system, x):
    c, s = jnp.cos(x[2]), jnp.sin(x[2])
    along = jnp.linspace(-0.5, float(system.wheelbase) + 0.5, 4)
    return jnp.stack([x[0] + along * c, x[1] + along * s], axis=1)


def run(cfg: Config, run) -> dict:
    system = BicycleCar()
    model = Discretised(system, cfg.dt)
    goal = jnp.array([0.0, cfg.slot_depth, -jnp.pi / 2, 0.0])
    centers = [jnp.array([-cfg.neighbour_gap, 1.0]), jnp.array([cfg.neighbour_gap, 1.0])]
    running = add_costs(
        control_effort(jnp.array([0.01, 0.1])),
        *[
            obstacle(
                c,
                cfg.neighbour_radius,
                weight=cfg.obstacle_weight,
                sharpness=20.0,
                points=lambda x: _body_points(system, x),
            )
            for c in centers
        ],
    )
    cost = Cost(running, terminal_quadratic(jnp.diag(jnp.array([100.0, 100.0, 100.0, 10.0])), goal))
    x0 = jnp.asarray(cfg.start, float)
    # Initial guess: roll forward, then brake (iLQR shapes the steering).
    T = cfg.horizon
    accel = jnp.where(jnp.arange(T) < T // 4, 1.0, jnp.where(jnp.arange(T) < T // 2, -1.0, 0.0))
    us0 = jnp.stack([accel, jnp.zeros(T)], axis=1)
    us0 = us0 + 0.01 * jax.random.normal(jax.random.key(cfg.seed), (T, 2))
    # ilqr compiles itself: no jit around it, whose input checks would be host callbacks
    # (a program with one is never kept by JAX's persistent compilation cache).
    solve = lambda us: ilqr(model, cost, x0, us, max_iter=cfg.ilqr_iterations, tol=1e-8)
    t0 = time.perf_counter()
    res = jax.block_until_ready(solve(us0))
    t_total = time.perf_counter() - t0
    xs = np.asarray(trajectory(model, x0, res.us))
    pos_err = float(np.linalg.norm(xs[-1, :2] - np.asarray(goal[:2])))
    head_err = float(abs(np.arctan2(np.sin(xs[-1, 2] + np.pi / 2), np.cos(xs[-1, 2] + np.pi / 2))))
    pts = jax.vmap(lambda x: _body_points(system, x))(jnp.asarray(xs))
    clearance = min(float(jnp.min(jnp.linalg.norm(pts - c[None, None], axis=-1))) for c in centers)
    clearance -= cfg.neighbour_radius
    it = int(res.iterations)
    run.log(
        f"iLQR: cost {float(res.cost):.4g} in {it} iterations; position error {pos_err:.3f} m,"
        f" heading error {head_err:.3f} rad, clearance {clearance:.2f} m ({t_total:.1f} s)"
    )

    t = np.arange(cfg.horizon + 1) * cfg.dt
    steer = float(system.max_steer) * np.tanh(np.asarray(res.us[:, 1]) / float(system.max_steer))
    plots.state_plot(
        run,
        "trajectory.png",
        t,
        {"speed (m/s)": xs[:, 3], "accel (m/s2)": np.asarray(res.us[:, 0]), "steer (rad)": steer},
        title="car parking",
    )
    plots.cost_curves(run, "cost.png", {"iLQR": (np.arange(it + 1), res.history[: it + 1])})

    def background(ax):
        for c in centers:
            ax.add_patch(plt.Circle(np.asarray(c), cfg.neighbour_radius, color="C3", alpha=0.4))
        ax.plot(xs[:, 0], xs[:, 1], ":", color="gray")
        ax.add_patch(plt.Rectangle((-1.2, -1.0), 2.4, 5.5, fill=False, ls="--", color="C2"))

    plots.filmstrip(
        run,
        "filmstrip.png",
        plots.draw_car,
        system,
        xs,
        frames=12,
        xlim=(-10, 6),
        ylim=(-2, 9),
        background=background,
        title="parking",
    )
    return {
        "position_error_m": pos_err,
        "heading_error_rad": head_err,
        "final_speed_mps": float(abs(xs[-1, 3])),
        "min_clearance_centreline_m": clearance,
        "cost": float(res.cost),
        "ilqr_iterations": it,
        "time_with_compile_s": round(t_total, 3),
        "success": bool(pos_err < 0.1 and head_err < 0.05 and clearance > 0),
    }
