"""Differentiable EMT against ASE's EMT: energies, forces, stress, and copper MD speed.

diffsim's `EMT` (ASE's effective-medium theory as a JAX energy) is compared with
`ase.calculators.emt.EMT` on periodic fcc copper (108 atoms, whose 10.8 A cell sees its
own images; 256 atoms through a neighbour list), a strained triclinic Cu-Au-Ni alloy
and a free Cu-Pd cluster, all rattled: largest differences in energy, forces and
stress (float64). Then the same 256-atom copper cell at 600 K runs velocity Verlet in
both from one initial state (trajectories compared step by step, speeds timed), and
the gradient of the trajectory's mean potential energy with respect to copper's EMT
parameter V0 is taken through the diffsim MD and checked against finite differences.
"""

from __future__ import annotations

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import diffsim.molecular as md

matplotlib.use("Agg")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    rattle: float = dataclasses.field(default=0.05, metadata={"min": 0, "help": "Angstrom"})
    md_repeat: int = dataclasses.field(default=4, metadata={"min": 4, "help": "fcc cubes a side"})
    temperature_K: float = dataclasses.field(default=600.0, metadata={"min": 0})
    dt_fs: float = dataclasses.field(default=2.0, metadata={"min_exclusive": 0})
    md_steps: int = dataclasses.field(default=200, metadata={"min": 10})
    grad_steps: int = dataclasses.field(default=50, metadata={"min": 1})


def _structures(cfg):
    from ase.build import bulk
    from ase.cluster import Icosahedron

    out = {}
    a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    a.rattle(cfg.rattle, seed=cfg.seed)
    out["Cu108 periodic (images)"] = (a, False)
    a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)
    a.rattle(cfg.rattle, seed=cfg.seed + 1)
    out["Cu256 periodic (neighbour list)"] = (a, True)
    a = bulk("Cu", "fcc", a=3.7, cubic=True).repeat(3)
    a.numbers[::3], a.numbers[1::5] = 79, 28
    strain = np.array([[1.0, 0.04, 0.0], [0.02, 1.0, 0.03], [0.0, 0.0, 0.98]])
    a.set_cell(a.cell[:] @ strain, scale_atoms=True)
    a.rattle(2 * cfg.rattle, seed=cfg.seed + 2)
    out["Cu57Au36Ni15 triclinic"] = (a, False)
    c = Icosahedron("Cu", 3)
    c.numbers[::4] = 46
    c.rattle(cfg.rattle, seed=cfg.seed + 3)
    out["Cu41Pd14 free cluster"] = (c, False)
    return out


def _space(atoms):
    return md.TriclinicBox(jnp.asarray(atoms.cell[:])) if atoms.pbc.all() else md.FreeSpace()


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt
    from ase import units
    from ase.calculators.emt import EMT as AseEMT
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    if not cfg.float64:
        raise ValueError("md_emt_copper compares with ASE to 1e-10: set float64 = true")
    metrics = {}
    run.log(
        "| structure | atoms | ASE energy (eV) | |dE| (eV) | max |dF| (eV/A) "
        "| max |dstress| (eV/A^3) |"
    )
    run.log("| --- | --- | --- | --- | --- | --- |")
    worst = {"energy": 0.0, "forces": 0.0, "stress": 0.0}
    for label, (atoms, use_list) in _structures(cfg).items():
        atoms.calc = AseEMT()
        e_ase = atoms.get_potential_energy()
        f_ase = atoms.get_forces()
        space = _space(atoms)
        emt = md.EMT(atoms.numbers.tolist(), space)
        r = jnp.asarray(atoms.positions)
        nbrs = md.neighbor_list(r, space, emt.cutoff_radius, skin=0.5) if use_list else None
        e, g = jax.value_and_grad(emt)(r, nbrs)
        de = abs(float(e) - e_ase)
        df = float(np.max(np.abs(-np.asarray(g) - f_ase)))
        ds = float("nan")
        if atoms.pbc.all():
            s = md.stress(emt, r, space, nbrs)
            ds = float(np.max(np.abs(np.asarray(s) - atoms.get_stress(voigt=False))))
            worst["stress"] = max(worst["stress"], ds)
        worst["energy"], worst["forces"] = max(worst["energy"], de), max(worst["forces"], df)
        run.log(f"| {label} | {len(atoms)} | {e_ase:.6f} | {de:.1e} | {df:.1e} | {ds:.1e} |")
    metrics |= {f"max_{k}_difference": float(v) for k, v in worst.items()}

    # Copper MD from one initial state in both codes (velocity Verlet, NVE).
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(cfg.md_repeat)
    thermalize_momenta(atoms, cfg.temperature_K, rng=np.random.default_rng(cfg.seed))
    Stationary(atoms)
    r0, v0 = atoms.positions.copy(), atoms.get_velocities().copy()
    mass = float(atoms.get_masses()[0])
    dt = cfg.dt_fs * units.fs
    space = _space(atoms)
    emt = md.EMT(atoms.numbers.tolist(), space)
    nbrs = md.neighbor_list(jnp.asarray(r0), space, emt.cutoff_radius, skin=0.5)
    nve = md.NVE(emt, dt=dt, mass=mass)
    state = nve.init(jnp.asarray(r0), jnp.asarray(v0), nbrs)
    md.simulate(nve, state, cfg.md_steps, chunk=cfg.md_steps)  # compile
    t0 = time.perf_counter()
    final, outs = md.simulate(nve, state, cfg.md_steps, chunk=cfg.md_steps)
    jax.block_until_ready(final.positions)
    t_diffsim = time.perf_counter() - t0

    atoms.calc = AseEMT()
    dyn = VelocityVerlet(atoms, timestep=dt)
    e_ase = []
    dyn.attach(lambda: e_ase.append(atoms.get_potential_energy()), interval=1)
    t0 = time.perf_counter()
    dyn.run(cfg.md_steps)
    t_ase = time.perf_counter() - t0
    e_ase = np.asarray(e_ase[1:])  # the first call is at step 0
    e_ds = np.asarray(outs["potential"])
    dpos = float(np.max(np.abs(np.asarray(final.positions) - atoms.positions)))
    tot = e_ds + np.asarray(outs["kinetic"])
    metrics |= {
        "md_atoms": len(atoms),
        "md_max_potential_difference_eV": float(np.max(np.abs(e_ds - e_ase))),
        "md_final_position_difference_A": dpos,
        "md_energy_drift_eV_per_atom": float(abs(tot[-1] - tot[0]) / len(atoms)),
        "diffsim_steps_per_s": cfg.md_steps / t_diffsim,
        "ase_steps_per_s": cfg.md_steps / t_ase,
        "speedup_vs_ase": t_ase / t_diffsim,
    }

    # The MD is differentiable: d <E_pot> / d V0(Cu) through the trajectory.
    k = emt.symbols.index("Cu")

    def mean_potential(v0_cu):
        e = eqx.tree_at(lambda e: e.params, emt, emt.params.at[k, 2].set(v0_cu))
        integ = md.NVE(e, dt=dt, mass=mass)
        s = integ.init(jnp.asarray(r0), jnp.asarray(v0), nbrs)
        _, o = md.simulate(integ, s, cfg.grad_steps, chunk=cfg.grad_steps)
        return jnp.mean(o["potential"]) / len(atoms)

    v0_cu = emt.params[k, 2]
    grad = float(jax.grad(mean_potential)(v0_cu))
    h = 1e-5
    fd = float((mean_potential(v0_cu + h) - mean_potential(v0_cu - h)) / (2 * h))
    metrics |= {
        "grad_mean_potential_dV0": grad,
        "finite_difference": fd,
        "grad_relative_error": abs(grad - fd) / abs(fd),
    }

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, cfg.md_steps + 1)
    ax.plot(steps, e_ase / len(atoms), label="ASE EMT", lw=2)
    ax.plot(steps, e_ds / len(atoms), "--", label="diffsim EMT", lw=1)
    ax.set(
        xlabel="step (2 fs)" if cfg.dt_fs == 2.0 else "step",
        ylabel="potential energy per atom (eV)",
        title=f"Cu{len(atoms)} NVE from one state: ASE vs diffsim",
    )
    ax.legend()
    run.save_figure(fig, "md_energy.png")
    plt.close("all")
    run.log(str(metrics))
    return metrics
