"""Cart-pole swing-up: BPTT shooting through the whole trajectory, then an iLQR polish.

The cart-pole starts hanging down at rest and must end upright over the origin. The
trajectory is one differentiable rollout of the RK4-discretised dynamics (force limits
by smooth saturation). Stage 1 optimises the forces by backpropagation through time with
Adam (`diffsim.fit`); stage 2 polishes with iLQR (Riccati backward pass, line search).
Reported: final angle error and cart position, the cost of each stage, iterations and
time. Plots: states and force, cost against iteration, a filmstrip and a GIF.

Two flags, which say different things: `success` is the task (upright within 0.05 rad,
cart within 0.1 m of the origin at the end); `ilqr_reached_tol` says whether the iLQR
polish stopped because its relative cost decrease fell below 1e-8 (False: it used all
`ilqr_iterations` while still improving a little; `ilqr_last_decrease` is the relative
decrease of its last iteration). A swing-up can succeed without iLQR reaching its
tolerance.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import diffsim
from diffsim.control import (
    CartPole,
    Cost,
    Discretised,
    SmoothSaturation,
    control_effort,
    ilqr,
    terminal_quadratic,
    trajectory,
    trajectory_cost,
)

from . import _control_plots as plots


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    dt: float = dataclasses.field(default=0.05, metadata={"min_exclusive": 0, "help": "s"})
    horizon: int = dataclasses.field(default=80, metadata={"min": 2, "help": "control steps"})
    max_force: float = dataclasses.field(default=20.0, metadata={"min_exclusive": 0})
    effort_weight: float = dataclasses.field(default=0.01, metadata={"min": 0})
    terminal_weights: list[float] = dataclasses.field(
        default_factory=lambda: [100.0, 100.0, 10.0, 10.0]
    )
    shooting_steps: int = dataclasses.field(default=300, metadata={"min": 0})
    lr: float = dataclasses.field(default=0.3, metadata={"min_exclusive": 0})
    ilqr_iterations: int = dataclasses.field(default=100, metadata={"min": 1})
    init_noise: float = dataclasses.field(default=0.1, metadata={"min": 0})
    gif: bool = True


def problem(cfg: Config):
    """The swing-up model, cost and start state (shared with the benchmark)."""
    system = CartPole()
    limits = SmoothSaturation(-cfg.max_force, cfg.max_force)
    model = Discretised(system, cfg.dt, limits=limits)
    cost = Cost(
        control_effort(cfg.effort_weight),
        terminal_quadratic(jnp.diag(jnp.asarray(cfg.terminal_weights, float))),
    )
    x0 = jnp.array([0.0, jnp.pi, 0.0, 0.0])
    return system, model, cost, x0


def run(cfg: Config, run) -> dict:
    system, model, cost, x0 = problem(cfg)
    key = jax.random.key(cfg.seed)
    us0 = cfg.init_noise * jax.random.normal(key, (cfg.horizon, 1))

    # Stage 1: BPTT shooting with Adam through the shared training loop.
    t0 = time.perf_counter()
    fit = diffsim.fit(
        lambda us, batch, k: trajectory_cost(model, cost, x0, us),
        us0,
        optax.adam(cfg.lr),
        steps=cfg.shooting_steps,
        key=key,
        log_every=1,
        directory=run.dir / "shooting",
        resume=run.resume,
        progress=not run.quiet,
    )
    t_shoot = time.perf_counter() - t0
    us_shot = fit.params
    J_shot = float(trajectory_cost(model, cost, x0, us_shot))
    run.log(
        f"BPTT shooting: cost {J_shot:.4g} after {cfg.shooting_steps} Adam steps ({t_shoot:.1f} s)"
    )

    # Stage 2: iLQR polish from the shooting solution.
    # ilqr compiles itself: no jit around it, whose input checks would be host callbacks
    # (a program with one is never kept by JAX's persistent compilation cache).
    solve = lambda us: ilqr(model, cost, x0, us, max_iter=cfg.ilqr_iterations, tol=1e-8)
    t0 = time.perf_counter()
    res = jax.block_until_ready(solve(us_shot))
    t_ilqr = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(solve(us_shot))
    t_ilqr_run = time.perf_counter() - t0
    iters = int(res.iterations)
    run.log(
        f"iLQR polish: cost {float(res.cost):.4g} in {iters} iterations "
        f"({t_ilqr_run:.2f} s after compilation; {t_ilqr:.1f} s with it)"
    )

    xs = np.asarray(trajectory(model, x0, res.us))
    forces = np.asarray(jax.vmap(model.limits)(res.us))
    angle_err = float(np.abs(np.arctan2(np.sin(xs[-1, 1]), np.cos(xs[-1, 1]))))
    t = np.arange(cfg.horizon + 1) * cfg.dt
    plots.state_plot(
        run,
        "trajectory.png",
        t,
        {"cart p (m)": xs[:, 0], "angle (rad)": xs[:, 1], "force (N)": forces[:, 0]},
        title="cart-pole swing-up (iLQR-polished)",
    )
    shot_curve = [r["loss"] for r in fit.history]
    ilqr_curve = np.asarray(res.history[: iters + 1])
    plots.cost_curves(
        run,
        "cost.png",
        {
            "BPTT shooting (Adam)": (np.arange(len(shot_curve)), shot_curve),
            "iLQR polish": (len(shot_curve) + np.arange(len(ilqr_curve)), ilqr_curve),
        },
        title="swing-up cost",
    )
    lim = dict(xlim=(-1.5, 1.5), ylim=(-0.8, 0.8))
    plots.filmstrip_panels(
        run,
        "filmstrip.png",
        plots.draw_cartpole,
        system,
        xs,
        dt=cfg.dt,
        frames=9,
        xlim=(-1.0, 1.0),
        ylim=(-0.7, 0.7),
        title="cart-pole swing-up (BPTT shooting + iLQR)",
    )
    if cfg.gif:
        plots.animation(run, "swingup.gif", plots.draw_cartpole, system, xs, dt=cfg.dt, **lim)
    return {
        "final_angle_error_rad": angle_err,
        "final_cart_position_m": float(abs(xs[-1, 0])),
        "final_speed": float(np.linalg.norm(xs[-1, 2:])),
        "cost_shooting": J_shot,
        "cost_final": float(res.cost),
        "ilqr_iterations": iters,
        "ilqr_reached_tol": bool(res.converged),
        "ilqr_last_decrease": float(
            (ilqr_curve[-2] - ilqr_curve[-1]) / abs(ilqr_curve[-2]) if len(ilqr_curve) > 1 else 0.0
        ),
        "shooting_time_s": round(t_shoot, 3),
        "ilqr_time_s": round(t_ilqr_run, 4),
        "max_force_n": float(np.max(np.abs(forces))),
        "success": bool(angle_err < 0.05 and abs(xs[-1, 0]) < 0.1),
    }
