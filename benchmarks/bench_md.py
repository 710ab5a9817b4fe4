"""Molecular dynamics benchmark: diffsim.molecular against JAX MD and ASE, side by side.

Lennard-Jones (sigma = epsilon = 1, switched cutoff ro = 2.0, rc = 2.5: JAX MD's
`lennard_jones_neighbor_list` default, ASE `LennardJones(smooth=True, ro=2.0, rc=2.5)`)
at density 0.8, float32 on CPU, same positions and the same Verlet skin (JAX MD's
`dr_threshold`) for both neighbor lists. Reports, each the median of repeats after a
warm-up (compile time listed separately), diffsim and JAX MD timed in alternation
(`_timing.interleaved`) so that a ratio holds while the machine's load changes:

- energy + forces with a neighbour list (N = 1,000 and 8,000);
- a neighbour-list rebuild (forced: the reference positions are stale);
- NVE steps per second, list updates (rebuild when needed) included (N = 1,000);
- ASE's LennardJones calculator (numpy, float64) for the force evaluation, at positions
  that move a little between calls and with its neighbour list kept, as in ASE's MD
  (timed in the same alternation as diffsim and JAX MD).

`--quick`: 3 repeats, full: 7 (NVE: 3); the load (`machine_load`) is printed
before and after the table.

Every timed quantity is first checked to agree with the anchor: energy and forces with
JAX MD's (relative 1e-4, forces 1% of the largest), forces with ASE's, the NVE end
positions with JAX MD's.

Run: `.venv/bin/python benchmarks/bench_md.py [--quick]`.
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _timing import interleaved, machine_load, timed

import diffsim.molecular as md


def configuration(n, density=0.8, seed=0):
    r, box = md.lattice(n, density, dtype=jnp.float32)
    rng = np.random.default_rng(seed)
    r = box.wrap(r + jnp.asarray(rng.normal(scale=0.02, size=r.shape), jnp.float32))
    return r, box


def bench_forces(n, skin, repeats, with_ase):
    from jax_md import energy as jenergy, space as jspace

    r, box = configuration(n)
    L = float(box.lengths[0])
    out = {}
    # diffsim
    energy = md.lennard_jones(box, cutoff=md.Switched(2.0, 2.5))
    nbrs = md.neighbor_list(r, box, 2.5, skin=skin)
    f = jax.jit(jax.value_and_grad(lambda x, nb: energy(x, nb)))
    stale = eqx.tree_at(lambda nb: nb.reference, nbrs, r + 1.0)
    upd = jax.jit(lambda nb, x: nb.update(x))
    out["ours_pairs"] = int(nbrs.count)
    # JAX MD
    disp, _ = jspace.periodic(L)
    nfn, efn = jenergy.lennard_jones_neighbor_list(
        disp, L, r_onset=2.0, r_cutoff=2.5, dr_threshold=skin
    )
    jn = nfn.allocate(r)
    g = jax.jit(jax.value_and_grad(efn))
    jstale = jn.set(reference_position=r + 1.0)
    jupd = jax.jit(lambda nb, x: nb.update(x))
    # The same energy and forces (float32) before any timing; the first calls compile.
    first = {"ours": timed(f, r, nbrs, repeats=1), "jaxmd": timed(g, r, jn, repeats=1)}
    first_rb = {"ours": timed(upd, stale, r, repeats=1), "jaxmd": timed(jupd, jstale, r, repeats=1)}
    assert int(first_rb["ours"].out.rebuilds) == int(stale.rebuilds) + 1
    e_ours, f_ours = first["ours"].out
    e_ref, f_ref = first["jaxmd"].out
    out["energy_rel_diff"] = abs(float(e_ours) - float(e_ref)) / abs(float(e_ref))
    out["force_max_diff"] = float(jnp.max(jnp.abs(f_ours - f_ref)))
    assert out["energy_rel_diff"] < 1e-4 and out["force_max_diff"] < 1e-2 * float(
        jnp.max(jnp.abs(f_ref))
    ), out
    force_calls = {"ours": (f, (r, nbrs)), "jaxmd": (g, (r, jn))}
    if with_ase:
        from ase.calculators.lj import LennardJones

        r64 = np.asarray(r, np.float64)
        atoms = md.to_atoms(r64, space=box)
        atoms.calc = LennardJones(sigma=1.0, epsilon=1.0, smooth=True, ro=2.0, rc=2.5)
        fa = atoms.get_forces()  # builds ASE's neighbour list, kept from here on
        out["ase_force_max_diff"] = float(np.max(np.abs(np.asarray(f_ours) + fa)))
        assert out["ase_force_max_diff"] < 1e-2 * float(np.max(np.abs(fa))), out
        # As in ASE's own MD: the positions move a little between calls (forces are
        # recomputed), and the calculator keeps its neighbour list (rebuilt only when an
        # atom has moved more than half its skin, which these moves never reach).
        moved = [r64, r64 + 1e-4 * np.random.default_rng(1).normal(size=r64.shape)]
        calls = [0]

        def ase_forces():
            calls[0] += 1
            atoms.positions = moved[calls[0] % 2]
            return atoms.get_forces()

        nl = atoms.calc.nl
        force_calls["ase"] = (ase_forces, ())
    # diffsim, JAX MD and ASE in alternation, so that the load hits every side of a ratio.
    forces = interleaved(force_calls, max(repeats, 3))
    if with_ase:
        assert atoms.calc.nl is nl and nl.nupdates == 1, "ASE rebuilt its neighbour list"
        out["ase_forces"] = forces["ase"].median
    rebuild = interleaved({"ours": (upd, (stale, r)), "jaxmd": (jupd, (jstale, r))}, repeats)
    for name in ("ours", "jaxmd"):
        out[f"{name}_forces"], out[f"{name}_forces_compile"] = (
            forces[name].median,
            first[name].first,
        )
        out[f"{name}_rebuild"] = rebuild[name].median
        out[f"{name}_rebuild_compile"] = first_rb[name].first
    return out


def bench_nve(n, skin, steps, repeats):
    from jax_md import energy as jenergy, simulate, space as jspace

    r, box = configuration(n)
    L = float(box.lengths[0])
    v = md.random_velocities(n, 3, 1.0, key=jax.random.key(0), dtype=jnp.float32)
    out = {}
    energy = md.lennard_jones(box, cutoff=md.Switched(2.0, 2.5))
    nbrs = md.neighbor_list(r, box, 2.5, skin=skin)
    vv = md.NVE(energy, dt=0.005)
    s0 = vv.init(r, v, nbrs)

    def make_ours(n):
        def ours():
            s, _ = md.simulate(vv, s0, n, chunk=n)
            return s

        return ours

    disp, shift = jspace.periodic(L)
    nfn, efn = jenergy.lennard_jones_neighbor_list(
        disp, L, r_onset=2.0, r_cutoff=2.5, dr_threshold=skin
    )
    jn = nfn.allocate(r)
    init_fn, apply_fn = simulate.nve(efn, shift, 0.005)
    st = init_fn(jax.random.key(0), r, kT=1.0, neighbor=jn)
    st = st.set(momentum=v)  # same velocities as ours (mass 1)

    def make_jaxmd(n):
        @jax.jit
        def jaxmd(st, nb):
            def body(i, carry):
                st, nb = carry
                st = apply_fn(st, neighbor=nb)
                return st, nb.update(st.position)

            return jax.lax.fori_loop(0, n, body, (st, nb))

        return jaxmd

    ours, jaxmd = make_ours(steps), make_jaxmd(steps)
    first_ours = timed(ours, repeats=1)
    s = first_ours.out
    out["ours_rebuilds"] = int(s.neighbors.rebuilds) - int(s0.neighbors.rebuilds)
    first_jaxmd = timed(jaxmd, st, jn, repeats=1)
    # The same trajectory before any timing (float32 and chaotic, so compared after at
    # most 200 steps: 1.1e-4 measured at 200).
    n_check = min(steps, 200)
    if n_check == steps:
        s_check, (st_check, jn_check) = s, first_jaxmd.out
    else:
        s_check = make_ours(n_check)()
        st_check, jn_check = make_jaxmd(n_check)(st, jn)
    for nb in (jn_check, first_jaxmd.out[1]):
        assert not bool(nb.did_buffer_overflow), "JAX MD neighbor list overflowed"
    out["nve_check_steps"] = n_check
    out["nve_position_diff"] = float(
        jnp.max(jnp.abs(box.displacement(st_check.position, s_check.positions)))
    )
    assert out["nve_position_diff"] < 1e-2, out
    times = interleaved({"ours": (ours, ()), "jaxmd": (jaxmd, (st, jn))}, repeats)
    out["ours_nve"], out["ours_nve_compile"] = times["ours"].median, first_ours.first
    out["jaxmd_nve"], out["jaxmd_nve_compile"] = times["jaxmd"].median, first_jaxmd.first
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1,000 only, fewer repeats")
    parser.add_argument("--skin", type=float, default=0.5)
    args = parser.parse_args()
    sizes = [1000] if args.quick else [1000, 8000]
    repeats = 3 if args.quick else 7
    nve_steps = 200 if args.quick else 1000
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, float32, skin {args.skin}")
    print(machine_load())
    rows = []
    for n in sizes:
        res = bench_forces(n, args.skin, repeats, with_ase=True)
        rows.append((n, res))
        print(
            f"N={n}: pairs {res['ours_pairs']}, energy rel diff vs JAX MD "
            f"{res['energy_rel_diff']:.1e}, max |dF| {res['force_max_diff']:.1e}, "
            f"vs ASE {res['ase_force_max_diff']:.1e}"
        )
    nve = bench_nve(1000, args.skin, nve_steps, max(repeats // 2, 3))
    print()
    print("| quantity | N | diffsim | JAX MD | ASE | JAX MD / diffsim | ASE / diffsim |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, r in rows:
        ours, ref, ase = r["ours_forces"], r["jaxmd_forces"], r["ase_forces"]
        print(
            f"| LJ energy + forces (ms) | {n} | {1e3 * ours:.2f} | {1e3 * ref:.2f} | "
            f"{1e3 * ase:.0f} | {ref / ours:.2f}x | {ase / ours:.0f}x |"
        )
    for n, r in rows:
        ours, ref = r["ours_rebuild"], r["jaxmd_rebuild"]
        print(
            f"| neighbor-list rebuild (ms) | {n} | {1e3 * ours:.2f} | {1e3 * ref:.2f} | - | "
            f"{ref / ours:.2f}x | - |"
        )
    ours_sps = nve_steps / nve["ours_nve"]
    jaxmd_sps = nve_steps / nve["jaxmd_nve"]
    print(
        f"| NVE steps/s ({nve_steps} steps, {nve['ours_rebuilds']} rebuilds) | 1000 | "
        f"{ours_sps:.0f} | {jaxmd_sps:.0f} | - | {ours_sps / jaxmd_sps:.2f}x (speed-up) | - |"
    )
    print(
        f"NVE positions after {nve['nve_check_steps']} steps, diffsim vs JAX MD: "
        f"max |dr| {nve['nve_position_diff']:.1e}"
    )
    print(machine_load())
    print()
    print("compile + first call (s):")
    for n, r in rows:
        print(
            f"  N={n}: forces diffsim {r['ours_forces_compile']:.2f} / JAX MD "
            f"{r['jaxmd_forces_compile']:.2f}; rebuild diffsim {r['ours_rebuild_compile']:.2f} / "
            f"JAX MD {r['jaxmd_rebuild_compile']:.2f}"
        )
    print(f"  NVE: diffsim {nve['ours_nve_compile']:.2f} / JAX MD {nve['jaxmd_nve_compile']:.2f}")


if __name__ == "__main__":
    main()
