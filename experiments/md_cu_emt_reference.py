"""Reference data for learned potentials: ASE's EMT copper, energies and forces along MD.

Bulk FCC copper (a periodic supercell) is rattled and run with ASE's Langevin dynamics
under the EMT calculator at the given temperature; every `record_every` steps the
positions, cell, energy and forces are written to `cu_emt.extxyz` through
`diffsim.molecular.write_trajectory`, and read back with `read_trajectory` to check the
round trip. No training here: the learned-potential issue trains on this file. Also
checks that EMT's forces are minus the finite-difference gradient of its energy.
"""

from __future__ import annotations

import dataclasses

import matplotlib
import numpy as np

import diffsim.molecular as md

matplotlib.use("Agg")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    repeat: int = dataclasses.field(default=3, metadata={"min": 1, "help": "supercell edge"})
    lattice_constant: float = dataclasses.field(default=3.61, metadata={"min_exclusive": 0})
    temperature_K: float = dataclasses.field(default=600.0, metadata={"min": 0})
    timestep_fs: float = dataclasses.field(default=2.0, metadata={"min_exclusive": 0})
    steps: int = dataclasses.field(default=2000, metadata={"min": 1})
    record_every: int = dataclasses.field(default=10, metadata={"min": 1})
    rattle: float = dataclasses.field(default=0.05, metadata={"min": 0, "help": "Angstrom"})


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt
    from ase import units
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    atoms = bulk("Cu", "fcc", a=cfg.lattice_constant, cubic=True).repeat(cfg.repeat)
    atoms.rattle(stdev=cfg.rattle, seed=cfg.seed)
    atoms.calc = EMT()
    rng = np.random.default_rng(cfg.seed)
    thermalize_momenta(atoms, cfg.temperature_K, rng=rng)
    dyn = Langevin(
        atoms,
        timestep=cfg.timestep_fs * units.fs,
        temperature_K=cfg.temperature_K,
        friction=0.02,
        fixcm=False,
        rng=rng,
    )
    positions, energies, forces, temps = [], [], [], []

    def record():
        positions.append(atoms.get_positions().copy())
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces().copy())
        temps.append(atoms.get_temperature())

    dyn.attach(record, interval=cfg.record_every)  # also records step 0
    dyn.run(cfg.steps)
    positions, energies, forces = np.stack(positions), np.array(energies), np.stack(forces)
    space = md.space_from_atoms(atoms)
    path = run.dir / "cu_emt.extxyz"
    md.write_trajectory(path, positions, atoms.numbers, space, energies=energies, forces=forces)
    back, first = md.read_trajectory(path)
    round_trip = float(np.max(np.abs(np.asarray(back) - positions)))

    # EMT's forces are -dE/dx: central differences on a few coordinates of the last frame.
    probe = atoms.copy()
    probe.calc = EMT()
    h, worst = 1e-5, 0.0
    for a, k in [(0, 0), (5, 1), (len(atoms) - 1, 2)]:
        plus, minus = probe.copy(), probe.copy()
        plus.positions[a, k] += h
        minus.positions[a, k] -= h
        plus.calc, minus.calc = EMT(), EMT()
        fd = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        worst = max(worst, abs(fd - probe.get_forces()[a, k]))

    n = len(atoms)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    t_ps = np.arange(len(energies)) * cfg.record_every * cfg.timestep_fs / 1000
    axes[0].plot(t_ps, energies / n)
    axes[0].set(xlabel="time (ps)", ylabel="E / atom (eV)", title="EMT potential energy")
    axes[1].plot(t_ps, temps)
    axes[1].axhline(cfg.temperature_K, color="k", ls="--", lw=0.8)
    axes[1].set(xlabel="time (ps)", ylabel="T (K)", title="temperature")
    axes[2].hist(forces.ravel(), bins=60)
    axes[2].set(xlabel="force component (eV/A)", title="force distribution")
    run.save_figure(fig, "cu_emt.png")
    plt.close("all")
    metrics = {
        "atoms": n,
        "frames": len(energies),
        "mean_energy_per_atom_eV": float(energies.mean() / n),
        "energy_std_per_atom_eV": float(energies.std() / n),
        "force_rms_eV_per_A": float(np.sqrt(np.mean(forces**2))),
        "mean_temperature_K": float(np.mean(temps[len(temps) // 2 :])),
        "max_fd_force_error": float(worst),
        "round_trip_max_error_A": round_trip,
        "dataset": str(path.name),
        "elements": str(first.elements),
    }
    run.log(str(metrics))
    return metrics
