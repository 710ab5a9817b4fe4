"""A Lennard-Jones fluid equilibrated by Langevin dynamics, then run at constant energy.

N atoms start on an FCC lattice at the given reduced density; Langevin BAOAB at the
target temperature melts and equilibrates them, then velocity Verlet runs NVE with a
neighbour list (smooth switched cutoff, JAX MD / HOOMD convention). The list is built
through a cell list where that is cheaper than the all-pairs build (at rho = 0.8: from
N = 2048 on; N = 500 uses the all-pairs build) and boxes too small for a list use the
dense all-pairs energy. Plots the energies, the temperature and g(r); reports the NVE
temperature, the relative energy drift, the pressure, the first peak of g(r), the MD
speed and which path ran (`neighbor_list`, `cell_list`).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import diffsim.molecular as md

matplotlib.use("Agg")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    n: int = dataclasses.field(default=500, metadata={"min": 32, "help": "4 c^3 or c^3 atoms"})
    density: float = dataclasses.field(default=0.8, metadata={"min_exclusive": 0})
    kT: float = dataclasses.field(default=1.0, metadata={"min_exclusive": 0})
    dt: float = dataclasses.field(default=0.005, metadata={"min_exclusive": 0})
    gamma: float = dataclasses.field(default=1.0, metadata={"min": 0})
    equilibrate_steps: int = dataclasses.field(default=2000, metadata={"min": 0})
    nve_steps: int = dataclasses.field(default=5000, metadata={"min": 10})
    skin: float = dataclasses.field(default=0.3, metadata={"min": 0})
    rdf_frames: int = dataclasses.field(default=20, metadata={"min": 1})


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    dtype = jnp.float32
    key = jax.random.key(cfg.seed)
    r, box = md.lattice(cfg.n, cfg.density, dtype=dtype)
    energy = md.lennard_jones(box, cutoff=md.Switched(2.0, 2.5))
    v = md.random_velocities(cfg.n, 3, cfg.kT, key=jax.random.fold_in(key, 0), dtype=dtype)
    # Boxes too small for a list with this skin use the dense all-pairs path.
    small = float(box.lengths[0]) < 2 * (energy.cutoff_radius + cfg.skin)
    nbrs = None if small else md.neighbor_list(r, box, energy.cutoff_radius, skin=cfg.skin)
    lang = md.Langevin(energy, dt=cfg.dt, kT=cfg.kT, gamma=cfg.gamma)
    state = lang.init(r, v, nbrs)
    run.log(f"N = {cfg.n}, box {float(box.lengths[0]):.3f}, neighbour list: {nbrs is not None}")
    t0 = time.perf_counter()
    state, eq = md.simulate(
        lang, state, cfg.equilibrate_steps, key=jax.random.fold_in(key, 1), chunk=500
    )
    run.log(
        f"equilibrated {cfg.equilibrate_steps} Langevin steps in {time.perf_counter() - t0:.1f}s"
    )
    vv = md.NVE(energy, dt=cfg.dt)
    # Production: NVE in chunks, keeping frames for g(r).
    frames, outs = [], []
    per = max(cfg.nve_steps // cfg.rdf_frames, 1)
    t0 = time.perf_counter()
    done = 0
    while done < cfg.nve_steps:
        k = min(per, cfg.nve_steps - done)
        state, out = md.simulate(vv, state, k, chunk=k)
        frames.append(state.positions)
        outs.append(out)
        done += k
    jax.block_until_ready(state.positions)
    seconds = time.perf_counter() - t0
    pot = np.concatenate([np.asarray(o["potential"], np.float64) for o in outs])
    kin = np.concatenate([np.asarray(o["kinetic"], np.float64) for o in outs])
    tot = pot + kin
    m = max(len(tot) // 10, 1)
    drift = abs(tot[-m:].mean() - tot[:m].mean()) / abs(tot.mean())
    temps = 2 * kin / (3 * cfg.n)
    rmax = min(float(box.lengths[0]) / 2, 4.0)
    gs = [md.rdf(f, box, r_max=rmax, bins=100)[1] for f in frames]
    centres = np.asarray(md.rdf(frames[0], box, r_max=rmax, bins=100)[0])
    g = np.mean(np.stack([np.asarray(x) for x in gs]), axis=0)
    p = float(
        md.pressure(energy, state.positions, box, state.neighbors, velocities=state.velocities)
    )

    eq_t = 2 * np.asarray(eq["kinetic"], np.float64) / (3 * cfg.n)
    steps_eq = np.arange(len(eq_t))
    steps_nve = len(eq_t) + np.arange(len(tot))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps_eq, np.asarray(eq["potential"]) / cfg.n, label="potential (Langevin)", lw=0.8)
    ax.plot(steps_nve, pot / cfg.n, label="potential (NVE)", lw=0.8)
    ax.plot(steps_nve, kin / cfg.n, label="kinetic (NVE)", lw=0.8)
    ax.plot(steps_nve, tot / cfg.n, label="total (NVE)", lw=1.2)
    ax.set(xlabel="step", ylabel="energy per atom (epsilon)", title="LJ fluid energies")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside the data
    run.save_figure(fig, "energy.png")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps_eq, eq_t, lw=0.6, label="Langevin")
    ax.plot(steps_nve, temps, lw=0.6, label="NVE")
    ax.axhline(cfg.kT, color="k", ls="--", lw=0.8, label="target")
    ax.set(xlabel="step", ylabel="kT (epsilon)", title="temperature")
    ax.legend()
    run.save_figure(fig, "temperature.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(centres, g)
    ax.axhline(1.0, color="k", lw=0.5)
    ax.set(xlabel="r (sigma)", ylabel="g(r)", title=f"g(r), N={cfg.n}, rho={cfg.density}")
    run.save_figure(fig, "rdf.png")
    plt.close("all")
    metrics = {
        "nve_temperature": float(temps.mean()),
        "relative_energy_drift": float(drift),
        "pressure": p,
        "rdf_peak_r": float(centres[np.argmax(g)]),
        "rdf_peak_height": float(g.max()),
        "nve_steps_per_second": cfg.nve_steps / seconds,
        "neighbor_rebuilds": -1 if nbrs is None else int(state.neighbors.rebuilds),
        "neighbor_list": nbrs is not None,
        "cell_list": nbrs is not None and nbrs.grid is not None,
    }
    run.log(str(metrics))
    return metrics
