# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Molecular dynamics: liquid argon in Angstrom, eV and fs; g(r); a gradient through MD
#
# With ASE's units (Angstrom, eV, amu) the time unit is 10.18 fs: `md.FS` converts
# femtoseconds, `md.KB` kelvin. Forces are `-jax.grad(energy)`; an integrator is a step,
# so a whole trajectory is differentiable. Open with `jupyter lab notebooks/molecular.py`
# (jupytext) or run as a script; files go to `$DIFFSIM_NOTEBOOK_OUT/molecular` (default
# `notebook_outputs/molecular`).

# %%
import os
import sys
from pathlib import Path

import ase.io
import jax
import matplotlib
import numpy as np

if "ipykernel" not in sys.modules:  # a script or a test: no display (Jupyter plots inline)
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

import diffsim
import diffsim.molecular as md

jax.config.update("jax_enable_x64", True)  # float64 for the gradient check below
OUT = Path(os.environ.get("DIFFSIM_NOTEBOOK_OUT", "notebook_outputs")) / "molecular"
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 108 argon atoms at liquid density (0.0204 per cubic Angstrom), 100 K

# %%
SIGMA, EPS, MASS = 3.4, 0.0104, 39.948  # Angstrom, eV, amu
r, box = md.lattice(108, 0.0204)  # fcc; box side 17.4 Angstrom
energy = md.lennard_jones(box, sigma=SIGMA, epsilon=EPS)  # cutoff: Switched(2.0, 2.5) sigma
print(f"box {float(box.lengths[0]):.2f} A, cutoff {energy.cutoff_radius:.2f} A")
kT = md.KB * 100.0
v = md.random_velocities(108, 3, kT, mass=MASS, key=jax.random.key(0))
dt = 5.0 * md.FS  # 5 fs
langevin = md.Langevin(energy, dt=dt, kT=kT, gamma=0.01 / md.FS, mass=MASS)
state, _ = md.simulate(langevin, langevin.init(r, v), 1000, key=jax.random.key(1))
nve = md.NVE(energy, dt=dt, mass=MASS)
frames, potential, kinetic = [], [], []
for _ in range(10):
    state, out = md.simulate(nve, state, 100)
    frames.append(state.positions)
    potential.append(out["potential"])
    kinetic.append(out["kinetic"])
potential, kinetic = np.concatenate(potential), np.concatenate(kinetic)
total = potential + kinetic
temp = 2 * kinetic / (3 * 108 * md.KB)
print(f"NVE: T = {temp.mean():.1f} K, energy drift {np.ptp(total) / 108 * 1000:.3f} meV/atom")

# %% [markdown]
# ## Radial distribution function, and the trajectory written for ASE (extxyz)

# %%
gs = [md.rdf(f, box, r_max=8.5, bins=85) for f in frames]
rr, g = np.asarray(gs[0][0]), np.mean([np.asarray(gi) for _, gi in gs], axis=0)
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(rr, g)
ax.set(xlabel="r (Angstrom)", ylabel="g(r)", title="liquid argon, 100 K")
fig.savefig(OUT / "rdf.png", dpi=100, bbox_inches="tight")
print(f"first peak g = {g.max():.2f} at r = {rr[np.argmax(g)]:.2f} A")
md.write_trajectory(OUT / "argon.extxyz", np.stack(frames), np.full(108, 18), box)
atoms = ase.io.read(OUT / "argon.extxyz", index=-1)
print(atoms, "read back by ASE")

# %% [markdown]
# ## A gradient through 100 MD steps
#
# The potential energy after 100 velocity-Verlet steps as a function of epsilon, by
# `jax.grad` with the reversible strategy (O(1) memory: the steps are run backwards),
# against backpropagation through time and a central finite difference. `Switched`
# cutoffs keep the forces continuous; with `Shifted` the gradient through a trajectory
# would miss the force jumps at the cutoff.


# %%
r0, v0 = state.positions, state.velocities


def final_energy(eps, reversible):
    e = md.lennard_jones(box, sigma=SIGMA, epsilon=eps)
    vv = md.NVE(e, dt=dt, mass=MASS)
    grad = diffsim.Reversible(vv.inverse) if reversible else diffsim.BPTT()
    s, _ = diffsim.rollout(vv.step, vv.init(r0, v0), length=100, grad=grad)
    return e(s.positions)


reversible = jax.grad(final_energy)(EPS, True)
bptt = jax.grad(final_energy)(EPS, False)
h = 1e-7
fd = (final_energy(EPS + h, False) - final_energy(EPS - h, False)) / (2 * h)
print(f"dE/d eps: reversible {float(reversible):.8f}, BPTT {float(bptt):.8f}, FD {float(fd):.8f}")
