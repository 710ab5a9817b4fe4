"""LJ13 and LJ38 global minima by FIRE and L-BFGS from perturbed starts.

LJ13 starts from a perturbed icosahedron, LJ38 from a perturbed fcc truncated
octahedron (the 38 fcc sites nearest an octahedral hole: 6 + 8 + 24, built here, since
the Cambridge Cluster Database is not reachable), both in free space with the bare
Lennard-Jones potential (epsilon = sigma = 1). Each start is relaxed by FIRE (JAX MD's
`fire_descent` rules) and by L-BFGS (optax) to a force tolerance; the energies are
compared with the known global minima, -44.326801 and -173.928427 epsilon (Wales and
Doye 1997). Plots the energy gap against iteration for every start and minimiser.
"""

from __future__ import annotations

import dataclasses
import itertools
import time

import jax.numpy as jnp
import matplotlib
import numpy as np

import diffsim.molecular as md

matplotlib.use("Agg")

KNOWN = {13: -44.326801, 38: -173.928427}


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    starts: int = dataclasses.field(default=3, metadata={"min": 1, "help": "perturbed starts"})
    perturbation: float = dataclasses.field(
        default=0.08, metadata={"min": 0, "help": "Gaussian displacement (sigma)"}
    )
    fmax: float = dataclasses.field(default=1e-6, metadata={"min_exclusive": 0})
    max_steps: int = dataclasses.field(default=5000, metadata={"min": 1})
    fire_dt: float = dataclasses.field(default=0.005, metadata={"min_exclusive": 0})
    fire_dt_max: float = dataclasses.field(default=0.02, metadata={"min_exclusive": 0})


def icosahedron(r_nn: float = 1.1) -> np.ndarray:
    """The 13-atom Mackay icosahedron: a centre and 12 vertices at distance `r_nn`."""
    g = (1 + 5**0.5) / 2
    v = []
    for a, b in itertools.product((-1.0, 1.0), (-g, g)):
        v += [(0.0, a, b), (a, b, 0.0), (b, 0.0, a)]
    v = np.asarray(v)
    v = v / np.linalg.norm(v[0]) * r_nn
    return np.vstack([np.zeros(3), v])


def truncated_octahedron(r_nn: float = 1.1) -> np.ndarray:
    """The 38-atom fcc truncated octahedron: the 38 fcc sites nearest an octahedral hole."""
    a = r_nn * 2**0.5
    base = np.array([[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]]) * 0.5
    cells = np.array(list(itertools.product(range(-3, 4), repeat=3)))
    sites = (cells[:, None, :] + base[None]).reshape(-1, 3) * a
    hole = np.array([0.5, 0.0, 0.0]) * a
    d = np.linalg.norm(sites - hole, axis=1)
    order = np.argsort(d, kind="stable")
    return sites[order[:38]] - hole


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    dtype = jnp.float64 if cfg.float64 else jnp.float32
    energy = md.lennard_jones(md.FreeSpace(), cutoff=md.NoCutoff())
    rng = np.random.default_rng(cfg.seed)
    minimizers = {
        "FIRE": md.FIRE(energy, dt_start=cfg.fire_dt, dt_max=cfg.fire_dt_max),
        "L-BFGS": md.LBFGS(energy),
    }
    rows, curves, metrics = [], {}, {}
    for n, build in ((13, icosahedron), (38, truncated_octahedron)):
        base = build()
        for name, minimizer in minimizers.items():
            errs, steps, secs = [], [], []
            for s in range(cfg.starts):
                r0 = base + cfg.perturbation * rng.normal(size=base.shape)
                t0 = time.perf_counter()
                res = md.minimize(
                    minimizer,
                    jnp.asarray(r0, dtype),
                    fmax=cfg.fmax,
                    max_steps=cfg.max_steps,
                )
                secs.append(time.perf_counter() - t0)
                e = float(res.energy)
                errs.append(e - KNOWN[n])
                steps.append(res.steps)
                curves[(n, name, s)] = np.asarray(res.energies, np.float64) - KNOWN[n]
                rows.append((n, name, s, e, e - KNOWN[n], res.steps, res.fmax, res.converged))
                run.log(
                    f"LJ{n} {name} start {s}: E = {e:.6f} (known {KNOWN[n]}), "
                    f"{res.steps} iterations, fmax {res.fmax:.1e}, {secs[-1]:.2f} s"
                )
            key = f"lj{n}_{name.lower().replace('-', '')}"
            metrics[f"{key}_max_abs_error"] = float(np.max(np.abs(errs)))
            metrics[f"{key}_mean_steps"] = float(np.mean(steps))
    run.log("| cluster | minimiser | start | energy (epsilon) | minus known | iterations | fmax |")
    run.log("| --- | --- | --- | --- | --- | --- | --- |")
    for n, name, s, e, gap, steps, f, _ in rows:
        run.log(f"| LJ{n} | {name} | {s} | {e:.6f} | {gap:.1e} | {steps} | {f:.1e} |")
    metrics["all_converged"] = all(row[-1] for row in rows)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, n in zip(axes, (13, 38)):
        for (m, name, s), c in curves.items():
            if m == n and len(c):
                ax.semilogy(
                    np.arange(1, len(c) + 1),
                    np.maximum(c, 1e-12),
                    color="C0" if name == "FIRE" else "C1",
                    lw=0.8,
                    label=name if s == 0 else None,
                )
        ax.set(
            xlabel="iteration",
            ylabel="E - E_min (epsilon)",
            title=f"LJ{n}: known minimum {KNOWN[n]}",
        )
        ax.legend()
    run.save_figure(fig, "convergence.png")
    plt.close("all")
    run.log(str(metrics))
    return metrics
