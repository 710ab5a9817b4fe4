# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Learned potentials: generate reference data, train a small model, run MD through ASE
#
# A learned potential is an energy like any other: forces are one backward pass, and the
# model drives diffsim's integrators and ASE's tools alike. Here the reference is a
# known pair potential (13-atom argon clusters labelled by ASE's Lennard-Jones), so the
# whole notebook runs in about a minute; `pot.load_or_generate("ethanol", 1500)` gives
# GFN2-xTB labels instead (`pip install 'diffsim[xtb]'`, about two minutes, cached).
# Open with `jupyter lab notebooks/potentials.py` (jupytext) or run as a script; files go
# to `$DIFFSIM_NOTEBOOK_OUT/potentials` (default `notebook_outputs/potentials`).

# %%
import os
import sys
from pathlib import Path

import jax
import matplotlib
import numpy as np
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

if "ipykernel" not in sys.modules:  # a script or a test: no display (Jupyter plots inline)
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

import diffsim.potentials as pot

OUT = Path(os.environ.get("DIFFSIM_NOTEBOOK_OUT", "notebook_outputs")) / "potentials"
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Reference data: 120 frames of Langevin MD at 30 K (ASE), cached in `OUT`
#
# `load_or_generate` shows a progress bar while it generates and reads the file back on a
# second run (the cache folder is `cache_dir`, else `$DIFFSIM_DATA`, else
# `~/.cache/diffsim/data`).

# %%
data = pot.load_or_generate("lj_cluster", 120, seed=0, cache_dir=OUT, equilibrate_steps=200)
train, val, test = data.split(80, 10, 30, seed=0)
print(data)

# %% [markdown]
# ## Force matching: a small SchNet, 300 Adam steps

# %%
model = pot.SchNet(data.elements, cutoff=8.5, features=16, layers=2, key=jax.random.key(0))
result = pot.train_potential(
    model, train, val, steps=300, batch_size=8, lr=3e-3, eval_every=100, key=jax.random.key(1)
)
scores = pot.evaluate(result.model, test)
print({k: round(float(v), 3) for k, v in scores.items()})
steps = [r["step"] for r in result.history if "eval_loss" in r]
losses = [r["eval_loss"] for r in result.history if "eval_loss" in r]
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.semilogy(steps, losses, "o-")
ax.set(xlabel="training step", ylabel="validation loss (normalised)", title="SchNet on LJ13")
fig.savefig(OUT / "validation.png", dpi=100, bbox_inches="tight")

# %% [markdown]
# ## The trained model drives ASE's velocity Verlet (1 fs steps)

# %%
atoms = data.to_atoms(0)
atoms.calc = pot.DiffsimCalculator(result.model)
thermalize_momenta(atoms, temperature_K=30, rng=np.random.default_rng(0))
energies = []
dyn = VelocityVerlet(atoms, timestep=1.0 * 0.09822694788464063)  # 1 fs in ASE time units
dyn.attach(lambda: energies.append(atoms.get_total_energy()), interval=5)
dyn.run(100)
drift = (max(energies) - min(energies)) * 1000
print(f"ASE NVE with the learned model: total energy within {drift:.4f} meV over 100 fs")
