"""Lennard-Jones sigma and epsilon learned by differentiating through MD trajectories.

A target trajectory is simulated with the true parameters from an equilibrated LJ
fluid. Starting from wrong parameters, Adam minimises the mean squared distance
between simulated and target positions along the trajectory; the gradient goes
through every velocity-Verlet step with the reversible strategy (O(1) memory: states
are rebuilt backwards, nothing stored). The learned g(r) is compared with the target's.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

import diffsim
import diffsim.molecular as md

matplotlib.use("Agg")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    n: int = dataclasses.field(default=108, metadata={"min": 32})
    density: float = dataclasses.field(default=0.8, metadata={"min_exclusive": 0})
    kT: float = dataclasses.field(default=1.0, metadata={"min_exclusive": 0})
    dt: float = dataclasses.field(default=0.005, metadata={"min_exclusive": 0})
    true_sigma: float = dataclasses.field(default=1.0, metadata={"min_exclusive": 0})
    true_epsilon: float = dataclasses.field(default=1.0, metadata={"min_exclusive": 0})
    init_sigma: float = dataclasses.field(default=0.93, metadata={"min_exclusive": 0})
    init_epsilon: float = dataclasses.field(default=0.7, metadata={"min_exclusive": 0})
    trajectory_steps: int = dataclasses.field(default=100, metadata={"min": 1})
    equilibrate_steps: int = dataclasses.field(default=1000, metadata={"min": 0})
    fit_steps: int = dataclasses.field(default=200, metadata={"min": 1})
    lr: float = dataclasses.field(default=0.03, metadata={"min_exclusive": 0})
    log_every: int = dataclasses.field(default=10, metadata={"min": 1})


class Params(eqx.Module):
    log_sigma: jax.Array
    log_epsilon: jax.Array


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    dtype = jnp.float32
    key = jax.random.key(cfg.seed)
    r, box = md.lattice(cfg.n, cfg.density, dtype=dtype)
    cutoff = md.Switched(2.0, 2.5)
    true_energy = md.lennard_jones(
        box, sigma=cfg.true_sigma, epsilon=cfg.true_epsilon, cutoff=cutoff
    )
    v = md.random_velocities(cfg.n, 3, cfg.kT, key=jax.random.fold_in(key, 0), dtype=dtype)
    lang = md.Langevin(true_energy, dt=cfg.dt, kT=cfg.kT)
    s0, _ = md.simulate(
        lang, lang.init(r, v), cfg.equilibrate_steps, key=jax.random.fold_in(key, 1), chunk=500
    )
    r0, v0 = s0.positions, s0.velocities

    def trajectory(sigma, epsilon, reversible=True):
        energy = md.lennard_jones(box, sigma=sigma, epsilon=epsilon, cutoff=cutoff)
        vv = md.NVE(energy, dt=cfg.dt)
        grad = diffsim.Reversible(vv.inverse) if reversible else diffsim.BPTT()

        def step(s, x):
            s2, _ = vv.step(s, x)
            return s2, s2.positions

        _, positions = diffsim.rollout(
            step, vv.init(r0, v0), length=cfg.trajectory_steps, grad=grad
        )
        return positions

    target = jax.jit(trajectory)(cfg.true_sigma, cfg.true_epsilon)

    def loss_fn(params, batch, key):
        pos = trajectory(jnp.exp(params.log_sigma), jnp.exp(params.log_epsilon))
        return jnp.mean(jnp.sum((pos - target) ** 2, axis=-1))

    params = Params(
        jnp.asarray(np.log(cfg.init_sigma), dtype), jnp.asarray(np.log(cfg.init_epsilon), dtype)
    )
    result = diffsim.fit(
        loss_fn,
        params,
        optax.adam(cfg.lr),
        steps=cfg.fit_steps,
        key=jax.random.fold_in(key, 2),
        log_every=cfg.log_every,
        directory=run.dir / "fit",
        resume=run.resume,
        progress=not run.quiet,
    )
    sigma = float(jnp.exp(result.params.log_sigma))
    epsilon = float(jnp.exp(result.params.log_epsilon))
    hist = result.history
    losses = [h["loss"] for h in hist if "loss" in h]

    rmax = min(float(box.lengths[0]) / 2, 3.0)
    _, g_target = md.rdf(target[-1], box, r_max=rmax, bins=60)
    centres, g_fit = md.rdf(trajectory(sigma, epsilon)[-1], box, r_max=rmax, bins=60)
    _, g_init = md.rdf(trajectory(cfg.init_sigma, cfg.init_epsilon)[-1], box, r_max=rmax, bins=60)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].semilogy(losses)
    axes[0].set(xlabel="logged step", ylabel="trajectory MSE", title="fit through MD")
    axes[1].plot(centres, g_target, label="target", lw=2)
    axes[1].plot(centres, g_init, label="initial params", ls=":")
    axes[1].plot(centres, g_fit, label="learned params", ls="--")
    axes[1].set(xlabel="r", ylabel="g(r) (last frame)")
    axes[1].legend()
    run.save_figure(fig, "fit.png")
    plt.close("all")
    metrics = {
        "sigma": sigma,
        "epsilon": epsilon,
        "sigma_rel_error": abs(sigma - cfg.true_sigma) / cfg.true_sigma,
        "epsilon_rel_error": abs(epsilon - cfg.true_epsilon) / cfg.true_epsilon,
        "initial_loss": float(losses[0]) if losses else float("nan"),
        "final_loss": float(loss_fn(result.params, None, None)),
    }
    run.log(str(metrics))
    return metrics
