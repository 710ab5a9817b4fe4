"""Accelerator benchmark: the workloads of the GPU table, diffsim against its anchors.

One table, float32 throughout (JAX's default; the models' matrix products at
`precision="highest"`, with one row for `"default"`), every section run in a subprocess of
its own on the same device (a fresh process per section, so one section's memory and
compiled programs do not weigh on the next), anchors timed in alternation with diffsim
(`_timing.interleaved`), medians after a first call (compilation) that is not counted.
Outputs are checked to agree before anything is timed (tolerances stated per section).

Sections (sizes for `--scale gpu`, the issue's; `--scale cpu` runs the same code at small
sizes in a few minutes on 2 cores):

- `lorenz`: Lorenz RK4, 1000 steps (dt 1e-3), vmapped over 1,048,576 initial states:
  `diffsim.ode.solve` and diffrax (the same RK4 tableau) against a hand-written `lax.scan`.
  Agreement: relative 1e-3 of the largest |y(T)| (float32).
- `grad`: the gradient of sum(y(T)) over a 65,536-member ensemble with respect to the
  shared Lorenz parameters, per gradient mode (`BPTT`, `Checkpointed`, `DiscreteAdjoint`,
  diffrax `RecursiveCheckpointAdjoint`), as a multiple of the forward ensemble's time.
  Agreement: relative 1e-2 of `jax.grad` of the scan (float32, chaotic over t = 1).
- `md`: Lennard-Jones at density 0.8 (switched 2.0-2.5 sigma, skin 0.5), N = 4,000 /
  32,000 / 256,000 / 1,048,576, against JAX MD: energy + forces with a neighbour list,
  a forced neighbour-list rebuild, and NVE through `simulate` in 100-step chunks against
  JAX MD's `fori_loop` chunks with its overflow flag read after each. Agreement: energy
  relative 1e-4, forces 1% of the largest, NVE positions after 200 steps within 1e-2.
- `life`: B3/S23 bit-packed (`BitPacked()`), 8192^2, 1000 steps: cell updates per second
  and the packed grid's traffic (read + write per step) against a device copy's bandwidth.
  Agreement: the final grid equals `RollSum()`'s bit for bit.
- `painn`: PaiNN (F = 64, 3 layers, cutoff 5 A) energy + forces on fcc copper (256, 4,000
  and 32,000 atoms, one neighbour list) against the NequIP-style e3nn-jax reference in
  `_nequip_style_e3nn.py`, E+F / E, and PaiNN at `precision="default"` (TF32 on NVIDIA
  GPUs) to show what the highest precision costs. Agreement: E from E+F equals E, forces
  finite and summing to zero (translation invariance) within 1e-3 of the largest.

Needs jax-md and e3nn-jax (the `dev` extra); on a machine without them the sections that
need them say so and the others run.

Run: `.venv/bin/python benchmarks/bench_gpu.py --scale cpu` (or `make bench-gpu`, which
uses `--scale gpu`); `--sections md,life` for a subset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SCALES = {
    "gpu": {
        "lorenz": {"batch": 1 << 20, "steps": 1000},
        "grad": {"batch": 1 << 16, "steps": 1000},
        "md": {"sizes": [4000, 32000, 256000, 1048576], "steps": 1000, "chunk": 100},
        "life": {"n": 8192, "steps": 1000, "copy_mib": 1024},
        "painn": {"sizes": [256, 4000, 32000]},
    },
    "cpu": {
        "lorenz": {"batch": 4096, "steps": 1000},
        "grad": {"batch": 256, "steps": 1000},
        "md": {"sizes": [256, 2048], "steps": 200, "chunk": 100},
        "life": {"n": 1024, "steps": 100, "copy_mib": 256},
        "painn": {"sizes": [108, 256]},
    },
}
SECTIONS = list(SCALES["gpu"])
GOALS = {
    "lorenz": "<= 1.05x the scan",
    "grad": "every exact mode <= 5x forward",
    "md forces": ">= 1.5x",
    "md nve": ">= 1.5x",
    "md rebuild": ">= 5x",
    "life": ">= 50% of copy",
    "painn": ">= 3x faster; E+F <= 2x E",
}


def _row(section, workload, size, ours_s, anchor, anchor_s, ratio, note="", goal=""):
    """One table row, printed as a tagged JSON line for the parent process."""
    row = {
        "section": section,
        "workload": workload,
        "size": size,
        "diffsim_ms": None if ours_s is None else 1e3 * ours_s,
        "anchor": anchor,
        "anchor_ms": None if anchor_s is None else 1e3 * anchor_s,
        "ratio": ratio,
        "note": note,
        "goal": goal,
    }
    print("ROW\t" + json.dumps(row), flush=True)


def _repeats(scale):
    return 5 if scale == "gpu" else 3


# --- Lorenz: the system, the hand-written floor, diffrax with the same RK4 tableau --------
# (as in bench_ode.py, which turns on float64 at import; this benchmark is float32)


def lorenz(t, y, args):
    sigma, rho, beta = args[0], args[1], args[2]
    return _jnp().stack(
        [sigma * (y[1] - y[0]), y[0] * (rho - y[2]) - y[1], y[0] * y[1] - beta * y[2]]
    )


def _jnp():
    import jax.numpy as jnp

    return jnp


def floor_rk4(f, y0, args, dt, n):
    import jax

    def body(y, _):
        k1 = f(None, y, args)
        k2 = f(None, y + 0.5 * dt * k1, args)
        k3 = f(None, y + 0.5 * dt * k2, args)
        k4 = f(None, y + dt * k3, args)
        return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

    return jax.lax.scan(body, y0, None, length=n)[0]


def diffrax_solve(f, y0, args, dt, n, adjoint=None):
    import diffrax
    import numpy as np

    class DiffraxRK4(diffrax.AbstractERK):
        tableau = diffrax.ButcherTableau(
            c=np.array([0.5, 0.5, 1.0]),
            b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
            b_error=np.zeros(4),
            a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
        )
        interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

        def order(self, terms):
            return 4

    kw = {} if adjoint is None else {"adjoint": adjoint}
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(f), DiffraxRK4(), 0.0, dt * n, dt, y0, args=args, max_steps=n, **kw
    )
    return sol.ys[-1]


def diffsim_solve(f, y0, args, dt, n, grad=None):
    import diffsim
    from diffsim.ode import RK4, solve

    grad = diffsim.BPTT() if grad is None else grad
    ts = _jnp().array([0.0, dt * n], y0.dtype)
    return solve(f, y0, ts, args, solver=RK4(), n_steps=n, grad=grad)[-1]


LORENZ_ARGS = (10.0, 28.0, 8.0 / 3.0)


# --- sections (each runs in its own process) -----------------------------------------------


def section_lorenz(cfg, scale):
    import jax
    import jax.numpy as jnp
    from _timing import interleaved

    b, n, dt = cfg["batch"], cfg["steps"], 1e-3
    y0 = jnp.asarray(1.0 + 0.1 * jax.random.normal(jax.random.key(0), (b, 3)), jnp.float32)
    args = jnp.asarray(LORENZ_ARGS, jnp.float32)
    calls = {
        "scan": jax.jit(jax.vmap(lambda y, a: floor_rk4(lorenz, y, a, dt, n), (0, None))),
        "diffsim": jax.jit(jax.vmap(lambda y, a: diffsim_solve(lorenz, y, a, dt, n), (0, None))),
        "diffrax": jax.jit(jax.vmap(lambda y, a: diffrax_solve(lorenz, y, a, dt, n), (0, None))),
    }
    outs = {k: jax.block_until_ready(f(y0, args)) for k, f in calls.items()}
    scale_y = float(jnp.max(jnp.abs(outs["scan"])))
    for k in ("diffsim", "diffrax"):
        err = float(jnp.max(jnp.abs(outs[k] - outs["scan"]))) / scale_y
        assert err < 1e-3, (k, err)
    t = interleaved({k: (f, (y0, args)) for k, f in calls.items()}, _repeats(scale))
    size = f"{b:,} x {n} steps"
    scan = t["scan"].median
    _row(
        "lorenz",
        "Lorenz RK4 ensemble (vmap)",
        size,
        t["diffsim"].median,
        "hand-written scan",
        scan,
        f"{t['diffsim'].median / scan:.2f}x scan",
        goal=GOALS["lorenz"],
    )
    _row(
        "lorenz",
        "Lorenz RK4 ensemble: diffrax",
        size,
        None,
        "diffrax",
        t["diffrax"].median,
        f"diffrax {t['diffrax'].median / scan:.1f}x scan",
    )


def section_grad(cfg, scale):
    import diffrax
    import jax
    import jax.numpy as jnp
    from _timing import interleaved

    import diffsim

    b, n, dt = cfg["batch"], cfg["steps"], 1e-3
    y0 = jnp.asarray(1.0 + 0.1 * jax.random.normal(jax.random.key(0), (b, 3)), jnp.float32)
    args = jnp.asarray(LORENZ_ARGS, jnp.float32)

    def loss_of(solve_one):
        return lambda a: jnp.sum(jax.vmap(lambda y: solve_one(y, a))(y0))

    forward = jax.jit(loss_of(lambda y, a: floor_rk4(lorenz, y, a, dt, n)))
    modes = {
        "BPTT": lambda y, a: diffsim_solve(lorenz, y, a, dt, n, grad=diffsim.BPTT()),
        "Checkpointed()": lambda y, a: diffsim_solve(
            lorenz, y, a, dt, n, grad=diffsim.Checkpointed()
        ),
        "DiscreteAdjoint": lambda y, a: diffsim_solve(
            lorenz, y, a, dt, n, grad=diffsim.DiscreteAdjoint()
        ),
        "diffrax RecursiveCheckpoint": lambda y, a: diffrax_solve(
            lorenz, y, a, dt, n, adjoint=diffrax.RecursiveCheckpointAdjoint()
        ),
    }
    exact = jax.block_until_ready(
        jax.jit(jax.grad(loss_of(lambda y, a: floor_rk4(lorenz, y, a, dt, n))))(args)
    )
    calls = {"forward": (forward, (args,))}
    for name, one in modes.items():
        g = jax.jit(jax.grad(loss_of(one)))
        out = jax.block_until_ready(g(args))
        err = float(jnp.max(jnp.abs(out - exact)) / jnp.max(jnp.abs(exact)))
        assert err < 1e-2, (name, err)
        calls[name] = (g, (args,))
    t = interleaved(calls, _repeats(scale))
    fwd = t["forward"].median
    size = f"{b:,} x {n} steps"
    for name in modes:
        anchor = "forward (scan)"
        ours = None if name.startswith("diffrax") else t[name].median
        note = f"{t[name].median * 1e3:.1f} ms" if ours is None else ""
        _row(
            "grad",
            f"batched gradient: {name}",
            size,
            ours,
            anchor,
            fwd,
            f"{t[name].median / fwd:.1f}x forward",
            note,
            GOALS["grad"],
        )


def _lj(n):
    import jax.numpy as jnp
    import numpy as np

    import diffsim.molecular as md

    r, box = md.lattice(n, 0.8, dtype=jnp.float32)
    rng = np.random.default_rng(0)
    r = box.wrap(r + jnp.asarray(rng.normal(scale=0.02, size=r.shape), jnp.float32))
    return r, box


def section_md(cfg, scale):
    for n in cfg["sizes"]:
        _md_one(n, 0.5, cfg["steps"], cfg["chunk"], _repeats(scale))


def _md_one(n, skin, steps, chunk, reps):
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    from _timing import interleaved
    from jax_md import energy as jenergy, simulate as jsimulate, space as jspace

    import diffsim.molecular as md

    r, box = _lj(n)
    L = float(box.lengths[0])
    energy = md.lennard_jones(box, cutoff=md.Switched(2.0, 2.5))
    nbrs = md.neighbor_list(r, box, 2.5, skin=skin)
    f = jax.jit(jax.value_and_grad(lambda x, nb: energy(x, nb)))
    stale = eqx.tree_at(lambda nb: nb.reference, nbrs, r + 1.0)
    upd = jax.jit(lambda nb, x: nb.update(x))
    disp, shift = jspace.periodic(L)
    nfn, efn = jenergy.lennard_jones_neighbor_list(
        disp, L, r_onset=2.0, r_cutoff=2.5, dr_threshold=skin
    )
    jn = nfn.allocate(r)
    g = jax.jit(jax.value_and_grad(efn))
    jstale = jn.set(reference_position=r + 1.0)
    jupd = jax.jit(lambda nb, x: nb.update(x))
    (e1, g1), (e2, g2) = jax.block_until_ready((f(r, nbrs), g(r, jn)))
    assert abs(float(e1 - e2)) < 1e-4 * abs(float(e2)), (float(e1), float(e2))
    assert float(jnp.max(jnp.abs(g1 - g2))) < 1e-2 * float(jnp.max(jnp.abs(g2)))
    assert int(upd(stale, r).rebuilds) == int(stale.rebuilds) + 1
    tf = interleaved({"ours": (f, (r, nbrs)), "jaxmd": (g, (r, jn))}, reps)
    tr = interleaved({"ours": (upd, (stale, r)), "jaxmd": (jupd, (jstale, r))}, reps)
    size = f"N = {n:,}"
    ratio = tf["jaxmd"].median / tf["ours"].median
    _row(
        "md",
        "LJ energy + forces",
        size,
        tf["ours"].median,
        "JAX MD",
        tf["jaxmd"].median,
        f"{ratio:.2f}x (JAX MD / diffsim)",
        goal=GOALS["md forces"],
    )
    ratio = tr["jaxmd"].median / tr["ours"].median
    _row(
        "md",
        "neighbour-list rebuild",
        size,
        tr["ours"].median,
        "JAX MD",
        tr["jaxmd"].median,
        f"{ratio:.2f}x (JAX MD / diffsim)",
        goal=GOALS["md rebuild"],
    )

    # NVE in chunks: diffsim's simulate (checks on the device, one read per chunk)
    # against JAX MD's loop with its overflow flag read after every chunk.
    v = md.random_velocities(n, 3, 1.0, key=jax.random.key(0), dtype=jnp.float32)
    nve = md.NVE(energy, dt=0.005)
    s0 = nve.init(r, v, nbrs)
    init_fn, apply_fn = jsimulate.nve(efn, shift, 0.005)
    st0 = init_fn(jax.random.key(0), r, kT=1.0, neighbor=jn).set(momentum=v)

    @jax.jit
    def jchunk(st, nb):
        def body(i, carry):
            st, nb = carry
            st = apply_fn(st, neighbor=nb)
            return st, nb.update(st.position)

        return jax.lax.fori_loop(0, chunk, body, (st, nb))

    def jaxmd_nve(total):
        st, nb = st0, jn
        for _ in range(total // chunk):
            st, nb = jchunk(st, nb)
            if bool(nb.did_buffer_overflow):
                raise RuntimeError("JAX MD neighbour list overflowed")
        return st.position

    def ours_nve(total):
        return md.simulate(nve, s0, total, chunk=chunk)[0].positions

    check = min(steps, 2 * chunk)  # float32 and chaotic: compared after 200 steps
    diff = box.displacement(jaxmd_nve(check), ours_nve(check))
    assert float(jnp.max(jnp.abs(diff))) < 1e-2, float(jnp.max(jnp.abs(diff)))
    tn = interleaved(
        {"ours": (ours_nve, (steps,)), "jaxmd": (jaxmd_nve, (steps,))}, max(reps - 2, 2)
    )
    ours_us = 1e6 * tn["ours"].median / steps
    ref_us = 1e6 * tn["jaxmd"].median / steps
    _row(
        "md",
        f"LJ NVE, {chunk}-step chunks ({steps} steps)",
        size,
        tn["ours"].median,
        "JAX MD",
        tn["jaxmd"].median,
        f"{tn['jaxmd'].median / tn['ours'].median:.2f}x (JAX MD / diffsim)",
        f"{ours_us:.0f} vs {ref_us:.0f} us/step",
        GOALS["md nve"],
    )


def section_life(cfg, scale):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from _timing import timed

    from diffsim.automata import LIFE, BitPacked, RollSum, run_life

    n, steps = cfg["n"], cfg["steps"]
    grid = jnp.asarray((np.random.default_rng(0).random((n, n)) < 0.35).astype(np.uint8))
    packed = jax.jit(lambda g: run_life(LIFE, g, steps, method=BitPacked(), frames=False))
    plain = jax.jit(lambda g: run_life(LIFE, g, steps, method=RollSum(), frames=False))
    assert bool(jnp.array_equal(packed(grid), plain(grid))), "BitPacked disagrees with RollSum"
    t = timed(packed, grid, repeats=_repeats(scale))
    words = jnp.arange(cfg["copy_mib"] * 2**20 // 4, dtype=jnp.uint32)
    copy = jax.jit(lambda x: x ^ jnp.uint32(1))  # reads and writes every byte once
    tc = timed(copy, words, repeats=_repeats(scale))
    copy_bw = 2 * words.nbytes / tc.median
    traffic = 2 * (n * n / 8) * steps / t.median  # the packed grid read and written per step
    _row(
        "life",
        "Life B3/S23 bit-packed",
        f"{n}^2 x {steps} steps",
        t.median,
        f"device copy ({cfg['copy_mib']} MiB)",
        tc.median,
        f"{traffic / copy_bw:.0%} of copy bandwidth",
        f"{n * n * steps / t.median:.2e} cell updates/s; {traffic / 1e9:.2f} vs "
        f"{copy_bw / 1e9:.1f} GB/s",
        GOALS["life"],
    )


def section_painn(cfg, scale):
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    from _nequip_style_e3nn import NequIPStyleE3nn
    from _timing import interleaved

    import diffsim.molecular as md
    import diffsim.potentials as pot

    @eqx.filter_jit
    def energy(model, r, species, nbrs, space):
        return model(r, species, nbrs, space=space)

    @eqx.filter_jit
    def energy_forces(model, r, species, nbrs, space):
        e, g = jax.value_and_grad(lambda x: model(x, species, nbrs, space=space))(r)
        return e, -g

    cutoff = 5.0
    for n in cfg["sizes"]:
        r, box = md.lattice(n, 4 / 3.61**3, dtype=jnp.float32)  # fcc copper, a = 3.61 A
        r = box.wrap(r + 0.05 * jax.random.normal(jax.random.key(1), r.shape, jnp.float32))
        nbrs = md.neighbor_list(r, box, cutoff, skin=0.0)
        species = jnp.zeros(n, jnp.int32)
        k1, k2 = jax.random.split(jax.random.key(0))
        painn = pot.PaiNN((29,), cutoff=cutoff, features=64, layers=3, key=k1)
        models = {
            "painn": painn,
            "painn_default": painn.with_precision("default"),
            "ref": NequIPStyleE3nn(
                (29,), cutoff=cutoff, avg_num_neighbors=2 * int(nbrs.count) / n, key=k2
            ),
        }
        calls = {}
        for name, m in models.items():
            args = (m, r, species, nbrs, box)
            e = energy(*args)
            e2, forces = energy_forces(*args)
            fmax = float(jnp.max(jnp.abs(forces)))
            assert bool(jnp.all(jnp.isfinite(forces))), name
            assert abs(float(e - e2)) <= 1e-5 * max(abs(float(e)), 1.0), (name, e, e2)
            assert float(jnp.max(jnp.abs(jnp.sum(forces, 0)))) < 1e-3 * max(fmax, 1e-3) * n**0.5
            calls[(name, "e")] = (energy, args)
            calls[(name, "ef")] = (energy_forces, args)
        t = {k: v.median for k, v in interleaved(calls, _repeats(scale)).items()}
        size = f"{n:,} atoms"
        ours, ours_e = t[("painn", "ef")], t[("painn", "e")]
        _row(
            "painn",
            "PaiNN F=64 E+F (highest)",
            size,
            ours,
            "NequIP-style e3nn",
            t[("ref", "ef")],
            f"{t[('ref', 'ef')] / ours:.2f}x faster",
            f"E+F / E = {ours / ours_e:.2f}",
            GOALS["painn"],
        )
        fast = t[("painn_default", "ef")]
        _row(
            "painn",
            "PaiNN F=64 E+F, precision='default'",
            size,
            fast,
            "PaiNN (highest)",
            ours,
            f"highest costs {ours / fast:.2f}x",
            "TF32 on NVIDIA GPUs; same on CPU",
        )


# --- the driver ----------------------------------------------------------------------


def run_section(name, scale):
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    import jax
    from _timing import machine_load

    print(f"# {name}: jax {jax.__version__} on {jax.devices()[0]}; {machine_load()}", flush=True)
    globals()[f"section_{name}"](SCALES[scale][name], scale)
    print(f"# {name} done; {machine_load()}", flush=True)


def _fmt_ms(x):
    return "-" if x is None else (f"{x:.3g}" if x < 100 else f"{x:.0f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    p.add_argument("--section", help=argparse.SUPPRESS)  # a child process runs one section
    p.add_argument("--timeout", type=float, default=900, help="seconds per section")
    a = p.parse_args()
    if a.section:
        run_section(a.section, a.scale)
        return
    names = [s for s in a.sections.split(",") if s]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        p.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    rows, failed = [], []
    t0 = time.perf_counter()
    for name in names:
        cmd = [sys.executable, __file__, "--section", name, "--scale", a.scale]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=a.timeout, env=os.environ.copy()
            )
        except subprocess.TimeoutExpired:
            failed.append(f"{name}: over {a.timeout:.0f} s")
            print(f"# {name}: over {a.timeout:.0f} s, skipped", flush=True)
            continue
        for line in proc.stdout.splitlines():
            if line.startswith("ROW\t"):
                rows.append(json.loads(line[4:]))
            else:
                print(line, flush=True)
        if proc.returncode != 0:
            err = proc.stderr.strip().splitlines()
            failed.append(f"{name}: exit {proc.returncode}: {err[-1] if err else ''}")
            print(f"# {name} FAILED:\n{proc.stderr[-3000:]}", flush=True)
    print()
    print(f"diffsim GPU-table benchmark, --scale {a.scale}, float32, one process per section")
    print(
        "| section | workload | size | diffsim (ms) | anchor | anchor (ms) | ratio | note | goal |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['section']} | {r['workload']} | {r['size']} | {_fmt_ms(r['diffsim_ms'])} | "
            f"{r['anchor']} | {_fmt_ms(r['anchor_ms'])} | {r['ratio']} | {r['note']} | "
            f"{r['goal']} |"
        )
    print(f"total {time.perf_counter() - t0:.0f} s")
    if failed:
        print("failed sections: " + "; ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
