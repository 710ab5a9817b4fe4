"""EMT benchmark: diffsim's differentiable EMT against ASE's EMT, side by side.

Periodic fcc copper (a = 3.61 A, rattled 0.05 A), float64 on CPU. Before any timing
the energies and forces are checked equal (energy to 1e-10 eV, forces to 1e-10 eV/A).
ASE gets its best ordinary use: one calculator kept across calls, so its neighbour
list (skin 0.3 A) is built once and only checked afterwards, and `calculate` is called
directly on slightly moved positions (no cache hit, no rebuild). diffsim runs a jitted
energy-and-gradient with its cell-list neighbour list (skin 0.5 A). Reports:

- energy + forces per call (N = 256, 500, 864; `--quick`: 256);
- NVE (velocity Verlet, 2 fs) steps per second, list updates included, against ASE's
  `VelocityVerlet` with the same calculator: the median of repeated runs (3 in `--quick`,
  7 in full), the two sides in alternation, the first run of each (compilation, ASE's
  list) apart.

Every table is printed with the machine's load (`machine_load`) before and after.

Run: `.venv/bin/python benchmarks/bench_emt.py [--quick]`.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from _timing import interleaved, machine_load

import diffsim.molecular as md

jax.config.update("jax_enable_x64", True)


def copper(repeat, seed=0):
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=seed)
    return atoms


def bench(repeat, repeats, md_steps, ase_md_steps):
    from ase import units
    from ase.calculators.emt import EMT as AseEMT
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    atoms = copper(repeat)
    n = len(atoms)
    box = md.TriclinicBox(jnp.asarray(atoms.cell[:]))
    emt = md.EMT(atoms.numbers.tolist(), box)
    r = jnp.asarray(atoms.positions)
    nbrs = md.neighbor_list(r, box, emt.cutoff_radius, skin=0.5)
    ours = jax.jit(jax.value_and_grad(lambda x, nb: emt(x, nb)))
    calc = AseEMT()
    atoms.calc = calc
    e_ase, f_ase = atoms.get_potential_energy(), atoms.get_forces()
    e, g = ours(r, nbrs)
    assert abs(float(e) - e_ase) < 1e-10, (float(e), e_ase)
    assert np.max(np.abs(-np.asarray(g) - f_ase)) < 1e-10
    rng = np.random.default_rng(1)
    base = atoms.positions.copy()

    def ase_call():
        atoms.positions = base + 1e-4 * rng.normal(size=base.shape)  # within the skin
        calc.calculate(atoms, ["energy", "forces"], ["positions"])
        return calc.results["forces"]

    t = interleaved({"diffsim": (ours, (r, nbrs)), "ASE": (ase_call, ())}, repeats=repeats)
    row = {"n": n, "diffsim_ms": 1e3 * t["diffsim"].median, "ase_ms": 1e3 * t["ASE"].median}
    row["ratio"] = row["ase_ms"] / row["diffsim_ms"]

    # MD steps per second from the same state.
    atoms.positions = base
    thermalize_momenta(atoms, 600, rng=np.random.default_rng(0))
    mass = float(atoms.get_masses()[0])
    dt = 2.0 * units.fs
    nve = md.NVE(emt, dt=dt, mass=mass)
    state = nve.init(r, jnp.asarray(atoms.get_velocities()), nbrs)

    def ours_md():
        final, _ = md.simulate(nve, state, md_steps, chunk=md_steps)
        return final.positions

    dyn = VelocityVerlet(atoms, timestep=dt)
    # Medians of `repeats` runs each, diffsim and ASE in alternation (the first runs,
    # compilation and ASE's neighbour list, apart); ASE's runs continue one trajectory.
    t = interleaved({"diffsim": (ours_md, ()), "ASE": (dyn.run, (ase_md_steps,))}, repeats)
    row["diffsim_steps_s"] = md_steps / t["diffsim"].median
    row["ase_steps_s"] = ase_md_steps / t["ASE"].median
    row["md_ratio"] = row["diffsim_steps_s"] / row["ase_steps_s"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 256 only, fewer repeats")
    args = parser.parse_args()
    sizes = (4,) if args.quick else (4, 5, 6)
    print(f"machine load before: {machine_load()}")
    rows = [
        bench(k, 3 if args.quick else 7, 100 if args.quick else 500, 10 if args.quick else 30)
        for k in sizes
    ]
    print(
        "| N | diffsim E+F (ms) | ASE E+F (ms) | ASE / diffsim "
        "| diffsim NVE steps/s | ASE NVE steps/s | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['n']} | {r['diffsim_ms']:.2f} | {r['ase_ms']:.1f} | {r['ratio']:.0f}x | "
            f"{r['diffsim_steps_s']:.0f} | {r['ase_steps_s']:.1f} | "
            f"{r['md_ratio']:.0f}x |"
        )
    print(f"machine load after: {machine_load()}")


if __name__ == "__main__":
    main()
