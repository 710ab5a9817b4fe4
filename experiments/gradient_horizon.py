"""Gradient norm against horizon: BPTT explodes in chaos; truncation and iLQR's feedback do not.

For a stable system (a damped pendulum) and a chaotic one (the double pendulum, a
two-link arm with no damping started high), the gradient of a trajectory cost with
respect to all the actions is computed over growing horizons by: full BPTT, checkpointed
BPTT (the same gradient in less memory), truncated BPTT (gradients cut every `truncation`
steps), and the closed-loop gradient through iLQR's time-varying feedback
u = u_t + delta_t + K_t (x - x_t) (one Riccati backward pass about the nominal). Reported:
growth factors of each gradient norm from the shortest to the longest horizon, the
largest BPTT/checkpointed difference, and their compiled working memory.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import diffsim
from diffsim.control import (
    Cost,
    Discretised,
    Pendulum,
    TwoLinkArm,
    ilqr,
    quadratic,
    terminal_quadratic,
    trajectory_cost,
)

from . import _control_plots as plots  # noqa: F401  (Agg backend)


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    dt: float = dataclasses.field(default=0.02, metadata={"min_exclusive": 0})
    horizons: list[int] = dataclasses.field(default_factory=lambda: [25, 200, 800])
    truncation: int = dataclasses.field(default=25, metadata={"min": 1})


def _problem(name, dt):
    if name == "pendulum":
        model = Discretised(Pendulum(damping=0.5), dt)
        x0 = jnp.array([1.0, 0.0])
    else:
        model = Discretised(TwoLinkArm(damping=0.0), dt)
        x0 = jnp.array([2.0, 2.5, 0.0, 0.0])
    n, m = x0.shape[0], model.control_dim
    cost = Cost(quadratic(0.01 * jnp.eye(n), 1e-3 * jnp.eye(m)), terminal_quadratic(jnp.eye(n)))
    return model, cost, x0


def _closed_loop_cost(model, cost, x0, us, xs, gains, delta):
    def step(x, inp):
        u_bar, x_bar, K, d, t = inp
        u = u_bar + d + K @ (x - x_bar)
        return model(x, u), cost.running(x, u, t)

    x_T, ls = jax.lax.scan(step, x0, (us, xs[:-1], gains, delta, jnp.arange(us.shape[0])))
    return jnp.sum(ls) + cost.terminal(x_T)


def gradient_norms(name, T, cfg):
    model, cost, x0 = _problem(name, cfg.dt)
    us = jnp.zeros((T, model.control_dim))

    # One iLQR iteration: its gains come from the backward pass about (us, xs). Called
    # outside `grads`: ilqr compiles itself, and inside a jit its input checks would put a
    # host callback in the program (JAX's persistent cache does not keep those).
    res = ilqr(model, cost, x0, us, max_iter=1, alphas=(1.0,))

    @jax.jit
    def grads(us, gains):
        g_bptt = jax.grad(lambda u: trajectory_cost(model, cost, x0, u))(us)
        g_ckpt = jax.grad(
            lambda u: trajectory_cost(model, cost, x0, u, grad=diffsim.Checkpointed())
        )(us)
        g_trunc = jax.grad(
            lambda u: trajectory_cost(model, cost, x0, u, grad=diffsim.Truncated(cfg.truncation))
        )(us)
        xs = jnp.concatenate([x0[None], jax.lax.scan(lambda x, u: (model(x, u),) * 2, x0, us)[1]])
        g_cl = jax.grad(lambda d: _closed_loop_cost(model, cost, x0, us, xs, gains, d))(
            jnp.zeros_like(us)
        )
        return g_bptt, g_ckpt, g_trunc, g_cl

    g_bptt, g_ckpt, g_trunc, g_cl = grads(us, res.gains)
    diff = float(jnp.max(jnp.abs(g_ckpt - g_bptt)) / jnp.max(jnp.abs(g_bptt)))
    norms = {
        k: float(jnp.linalg.norm(g))
        for k, g in (("bptt", g_bptt), ("truncated", g_trunc), ("ilqr_feedback", g_cl))
    }
    return norms, diff


def run(cfg: Config, run) -> dict:
    out = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for ax, name in zip(axes, ("pendulum", "double_pendulum")):
        table = {"bptt": [], "truncated": [], "ilqr_feedback": []}
        worst_diff = 0.0
        for T in cfg.horizons:
            norms, diff = gradient_norms(name, T, cfg)
            worst_diff = max(worst_diff, diff)
            for k in table:
                table[k].append(norms[k])
            run.log(
                f"{name} T={T}: "
                + ", ".join(f"{k} {v:.3e}" for k, v in norms.items())
                + f"; checkpointed vs BPTT {diff:.1e}"
            )
        t_h = np.asarray(cfg.horizons) * cfg.dt
        for k, label in (
            ("bptt", "BPTT = checkpointed"),
            ("truncated", f"truncated ({cfg.truncation})"),
            ("ilqr_feedback", "through iLQR feedback"),
        ):
            ax.semilogy(t_h, table[k], "o-", label=label)
            out[f"{name}_{k}_growth"] = table[k][-1] / table[k][0]
        out[f"{name}_checkpointed_rel_diff"] = worst_diff
        ax.set_title(name)
        ax.set_xlabel("horizon (s)")
        ax.set_ylabel("|dJ/dU|")
        ax.grid(alpha=0.3)
        ax.legend()
    run.save_figure(fig, "gradient_horizon.png")
    # Memory: BPTT stores every step; the checkpointed scan about sqrt(T) of them.
    model, cost, x0 = _problem("double_pendulum", cfg.dt)
    us = jnp.zeros((max(cfg.horizons), 2))
    for label, g in (("bptt", diffsim.BPTT()), ("checkpointed", diffsim.Checkpointed())):
        f = jax.grad(lambda u, g=g: trajectory_cost(model, cost, x0, u, grad=g))
        out[f"memory_{label}_bytes"] = int(diffsim.memory_usage(f, us).temp)
    return out
