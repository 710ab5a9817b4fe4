"""System identification: a cart-pole's masses, pole length and cart friction learned by BPTT.

Noisy state observations of several trajectories, driven by random forces on the "true"
cart-pole, are fitted by simulating the model from each window's first observed state and
backpropagating the prediction error through time to the physical parameters (fitted in
log space, so they stay positive), with `diffsim.fit`. Reported: each parameter's
relative error and the largest. Plots: loss against step, parameter trajectories,
a predicted-vs-observed trajectory and a filmstrip of the data.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import diffsim
from diffsim.control import CartPole, Discretised, prediction_loss, trajectory, with_parameters

from . import _control_plots as plots

FIELDS = ("cart_mass", "pole_mass", "length", "cart_friction")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    dt: float = dataclasses.field(default=0.02, metadata={"min_exclusive": 0})
    trajectories: int = dataclasses.field(default=8, metadata={"min": 1})
    steps_per_trajectory: int = dataclasses.field(default=100, metadata={"min": 2})
    window: int = dataclasses.field(default=25, metadata={"min": 1})
    noise: float = dataclasses.field(default=0.001, metadata={"min": 0, "help": "obs. std"})
    true_values: list[float] = dataclasses.field(default_factory=lambda: [1.0, 0.3, 0.6, 0.5])
    initial_values: list[float] = dataclasses.field(default_factory=lambda: [0.6, 0.15, 0.9, 0.1])
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    train_steps: int = dataclasses.field(default=100, metadata={"min": 0})
    lr: float = dataclasses.field(default=0.05, metadata={"min_exclusive": 0, "help": "Adam"})


def _model(logp, dt):
    return Discretised(with_parameters(CartPole(), **{k: jnp.exp(v) for k, v in logp.items()}), dt)


def run(cfg: Config, run) -> dict:
    true = dict(zip(FIELDS, cfg.true_values))
    plant = Discretised(with_parameters(CartPole(), **true), cfg.dt)
    key = jax.random.key(cfg.seed)
    k_u, k_x, k_n, k_fit = jax.random.split(key, 4)
    B, T = cfg.trajectories, cfg.steps_per_trajectory
    # Smooth random forces (a random walk, so the pole swings) and random starts.
    us = jnp.cumsum(jax.random.normal(k_u, (B, T, 1)), axis=1) * 0.5
    x0s = jax.random.uniform(k_x, (B, 4), minval=-1.0, maxval=1.0) * jnp.array(
        [[0.5, 3.0, 0.5, 1.0]]
    )
    clean = jax.vmap(lambda x0, u: trajectory(plant, x0, u))(x0s, us)
    observed = clean + cfg.noise * jax.random.normal(k_n, clean.shape)

    def loss(logp, batch, k):
        return prediction_loss(_model(logp, cfg.dt), observed, us, window=cfg.window)

    params0 = {k: jnp.log(jnp.asarray(v, float)) for k, v in zip(FIELDS, cfg.initial_values)}
    opt = optax.lbfgs() if cfg.optimizer == "lbfgs" else optax.adam(cfg.lr)
    fit = diffsim.fit(
        loss,
        params0,
        opt,
        steps=cfg.train_steps,
        key=k_fit,
        log_every=1,
        eval_fn=lambda p, k: {f"{n}": jnp.exp(p[n]) for n in FIELDS},
        eval_every=1,
        directory=run.dir / "fit",
        resume=run.resume,
        progress=not run.quiet,
    )
    learned = {k: float(jnp.exp(v)) for k, v in fit.params.items()}
    rel = {k: abs(learned[k] - true[k]) / abs(true[k]) for k in FIELDS}
    for k in FIELDS:
        run.log(
            f"{k}: true {true[k]:.4f}, initial {dict(zip(FIELDS, cfg.initial_values))[k]:.4f},"
            f" learned {learned[k]:.4f} (relative error {rel[k]:.2e})"
        )

    hist = fit.history
    steps = [r["step"] for r in hist]
    plots.cost_curves(
        run,
        "cost.png",
        {"prediction MSE": (steps, [r["loss"] for r in hist])},
        xlabel="step",
        title=f"system identification ({cfg.optimizer})",
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in FIELDS:
        vals = [r.get(f"eval_{k}", np.nan) for r in hist]
        ax.plot(steps, np.asarray(vals) / true[k], label=k)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("learned / true")
    ax.legend()
    run.save_figure(fig, "parameters.png")
    pred = trajectory(_model(fit.params, cfg.dt), observed[0, 0], us[0])
    t = np.arange(T + 1) * cfg.dt
    plots.state_plot(
        run,
        "trajectory.png",
        t,
        {
            "observed angle": np.asarray(observed[0, :, 1]),
            "predicted angle": np.asarray(pred[:, 1]),
            "force (N)": np.asarray(us[0, :, 0]),
        },
        title="trajectory 0",
    )
    plots.filmstrip(
        run,
        "filmstrip.png",
        plots.draw_cartpole,
        plant.system,
        np.asarray(clean[0]),
        frames=12,
        xlim=(-2.5, 2.5),
        ylim=(-0.8, 0.8),
        title="observed trajectory 0",
    )
    out = {f"rel_error_{k}": rel[k] for k in FIELDS}
    out.update({f"learned_{k}": learned[k] for k in FIELDS})
    out["max_rel_error"] = max(rel.values())
    out["final_loss"] = float(hist[-1]["loss"]) if hist else float("nan")
    return out
