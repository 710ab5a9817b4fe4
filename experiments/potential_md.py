"""Molecular dynamics driven by a learned potential, in diffsim's own integrators.

A model trained by `potential_train` (forces = -grad E, one backward pass) is bound
to the molecule's species and run from a held-out reference frame: Langevin (BAOAB)
at the reference temperature to equilibrate and to sample structures, then velocity
Verlet (NVE) for the energy drift. The distributions of the heavy-atom bond lengths
sampled with the learned model are compared with those of the reference method's own
MD (the data set: GFN2-xTB Langevin MD at the same temperature): mean, spread and
the 1-Wasserstein distance between the two.

Units are ASE's: Angstrom, eV, amu; one time unit is 10.18 fs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import diffsim
import diffsim.molecular as md
import diffsim.potentials as pot

matplotlib.use("Agg")

FS = 0.09822694788464063  # ase.units.fs: one femtosecond in ASE time units
KB = 8.617330337217213e-05  # ase.units.kB, eV/K


@dataclasses.dataclass(frozen=True)
class Config:
    model: str = dataclasses.field(
        default="latest",
        metadata={
            "help": "a potential_train run directory or model.eqx; 'latest': the newest "
            "runs/potential_train-* directory holding a model.eqx"
        },
    )
    system: Literal["ethanol", "malonaldehyde", "copper", "lj_cluster"] = "ethanol"
    n_configs: int = dataclasses.field(default=1500, metadata={"min": 1})
    dataset: str = dataclasses.field(default="", metadata={"help": "reference data file"})
    seed: int = 0
    temperature_K: float = dataclasses.field(default=500.0, metadata={"min_exclusive": 0})
    dt_fs: float = dataclasses.field(default=0.5, metadata={"min_exclusive": 0})
    friction_per_fs: float = dataclasses.field(default=0.01, metadata={"min": 0})
    equilibrate_steps: int = dataclasses.field(default=2000, metadata={"min": 0})
    nve_steps: int = dataclasses.field(default=10000, metadata={"min": 1})
    sample_steps: int = dataclasses.field(default=20000, metadata={"min": 1})
    sample_every: int = dataclasses.field(default=10, metadata={"min": 1})
    bond_cutoff: float = dataclasses.field(
        default=1.7, metadata={"min_exclusive": 0, "help": "heavy-atom bond length, Angstrom"}
    )
    float64: bool = True


def _bonds(positions, numbers, cutoff):
    heavy = np.nonzero(np.asarray(numbers) > 1)[0]
    out = []
    for a, i in enumerate(heavy):
        for j in heavy[a + 1 :]:
            if np.linalg.norm(positions[i] - positions[j]) < cutoff:
                out.append((int(i), int(j)))
    return out


def _lengths(traj, bonds):
    return np.stack([np.linalg.norm(traj[:, i] - traj[:, j], axis=-1) for i, j in bonds], -1)


def wasserstein1(a, b):
    """1-Wasserstein distance between two 1-D samples (quantile matching)."""
    q = np.linspace(0.0, 1.0, 513)[1:-1]
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def model_path(cfg: Config) -> Path:
    """The trained model the config names; `latest` is the newest potential_train run."""
    if cfg.model == "latest":
        runs = sorted(
            Path("runs").glob("potential_train-*/model.eqx"), key=lambda p: p.stat().st_mtime
        )
        if not runs:
            raise ValueError(
                "key 'model' = 'latest': no runs/potential_train-*/model.eqx here; run "
                "`diffsim run configs/potential_train.toml` first (the documented previous "
                "step), or --set model=RUN_DIR"
            )
        return runs[-1].parent
    path = Path(cfg.model)
    if not path.exists():
        raise ValueError(
            f"key 'model': {path} does not exist; give a potential_train run directory "
            "(from `diffsim run configs/potential_train.toml`) or a model.eqx"
        )
    return path


def validate(cfg: Config) -> None:
    """Called by the runner before the run directory is claimed."""
    model_path(cfg)


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    path = model_path(cfg)
    run.log(f"model: {path}")
    model = pot.load_model(path)
    dtype = jnp.float64 if cfg.float64 else jnp.float32
    model = pot.astype(model, dtype)
    data = (
        pot.load_dataset(cfg.dataset)
        if cfg.dataset
        else pot.load_or_generate(
            cfg.system, cfg.n_configs, seed=cfg.seed, log=run.log, progress=not run.quiet
        )
    )
    if data.cells is not None:
        raise ValueError("potential_md: molecular (non-periodic) data sets only")
    species = model.species_of(data.numbers)
    masses = jnp.asarray(data.to_atoms(0).get_masses(), dtype)
    energy = model.bind(species)
    dt = cfg.dt_fs * FS
    kT = KB * cfg.temperature_K
    key = jax.random.key(cfg.seed)
    r0 = jnp.asarray(data.positions[-1], dtype)
    v0 = md.random_velocities(len(species), 3, kT, key=jax.random.fold_in(key, 0), mass=masses)
    v0 = v0.astype(dtype)

    langevin = md.Langevin(energy, dt=dt, kT=kT, gamma=cfg.friction_per_fs / FS, mass=masses)
    state, _ = md.simulate(
        langevin, langevin.init(r0, v0), cfg.equilibrate_steps, key=jax.random.fold_in(key, 1)
    )
    run.log(f"equilibrated {cfg.equilibrate_steps} Langevin steps")

    def sample_block(integrator):
        def step(s, k):
            def inner(s, kk):
                s, out = integrator.step(s, kk)
                return s, out

            s, outs = jax.lax.scan(inner, s, k)
            return s, (s.positions, outs["potential"][-1], outs["kinetic"][-1])

        return step

    blocks = cfg.sample_steps // cfg.sample_every
    keys = jax.random.split(jax.random.fold_in(key, 2), blocks * cfg.sample_every)
    keys = keys.reshape(blocks, cfg.sample_every)
    sample = jax.jit(lambda s, k: diffsim.rollout(sample_block(langevin), s, k))
    state, (traj, _, kin) = sample(state, keys)
    traj = np.asarray(traj)
    n_atoms = len(species)
    temp = 2 * np.asarray(kin) / (3 * n_atoms * KB)
    run.log(f"sampled {cfg.sample_steps} steps; mean temperature {temp.mean():.1f} K")

    vv = md.NVE(energy, dt=dt, mass=masses)
    nve = jax.jit(lambda s: diffsim.rollout(vv.step, s, length=cfg.nve_steps))
    s_nve = vv.init(state.positions, state.velocities)
    _, outs = nve(s_nve)
    total = np.asarray(outs["potential"] + outs["kinetic"], np.float64)
    e0 = float(s_nve.potential_energy + 0.5 * jnp.sum(masses[:, None] * s_nve.velocities**2))
    drift = total - e0
    kinetic_mean = float(np.mean(np.asarray(outs["kinetic"])))
    t_ps = np.arange(1, cfg.nve_steps + 1) * cfg.dt_fs / 1000
    slope = float(np.polyfit(t_ps, drift, 1)[0])

    bonds = _bonds(np.asarray(data.positions[0]), data.numbers, cfg.bond_cutoff)
    ref = _lengths(np.asarray(data.positions), bonds)
    ours = _lengths(traj, bonds)
    symbols = data.to_atoms(0).get_chemical_symbols()
    metrics: dict = {
        "nve_steps": cfg.nve_steps,
        "dt_fs": cfg.dt_fs,
        "nve_max_abs_drift_meV": 1000 * float(np.max(np.abs(drift))),
        "nve_final_drift_meV": 1000 * float(drift[-1]),
        "nve_drift_slope_meV_per_ps_per_atom": 1000 * slope / n_atoms,
        "nve_drift_over_kinetic": float(np.max(np.abs(drift)) / kinetic_mean),
        "nvt_mean_temperature_K": float(temp.mean()),
    }
    fig, axes = plt.subplots(1, 1 + len(bonds), figsize=(4 * (1 + len(bonds)), 3.5))
    axes[0].plot(t_ps, 1000 * drift)
    axes[0].set_xlabel("time (ps)")
    axes[0].set_ylabel("E(t) - E(0) (meV)")
    axes[0].set_title(f"NVE, dt = {cfg.dt_fs} fs")
    for k, (i, j) in enumerate(bonds):
        name = f"{symbols[i]}{i}-{symbols[j]}{j}"
        w1 = wasserstein1(ours[:, k], ref[:, k])
        metrics[f"bond_{name}_mean_learned"] = float(ours[:, k].mean())
        metrics[f"bond_{name}_mean_reference"] = float(ref[:, k].mean())
        metrics[f"bond_{name}_std_learned"] = float(ours[:, k].std())
        metrics[f"bond_{name}_std_reference"] = float(ref[:, k].std())
        metrics[f"bond_{name}_wasserstein"] = w1
        ax = axes[k + 1]
        bins = np.linspace(
            min(ours[:, k].min(), ref[:, k].min()), max(ours[:, k].max(), ref[:, k].max()), 50
        )
        ax.hist(ref[:, k], bins, density=True, alpha=0.5, label="reference MD")
        ax.hist(ours[:, k], bins, density=True, alpha=0.5, label="learned model MD")
        ax.set_xlabel(f"{name} (Angstrom)")
        ax.set_title(f"W1 = {w1:.4f} A")
        ax.legend(fontsize=7)
    fig.tight_layout()
    run.save_figure(fig, "md.png")
    md.write_trajectory(
        run.path("trajectory.extxyz"), traj[:: max(1, len(traj) // 200)], data.numbers
    )
    return metrics
