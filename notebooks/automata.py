# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Cellular automata: simulate, infer a rule by backpropagation, read its table
#
# An elementary automaton is a step on a row of cells; `diffsim.automata` runs it
# exactly, and `LocalRuleNet` is a soft automaton (a convolution over the neighbourhood
# and a tiny MLP per cell) whose rule is learned from observed rows by gradient descent.
# Open with `jupyter lab notebooks/automata.py` (jupytext), or run as a script. Figures go
# to `$DIFFSIM_NOTEBOOK_OUT/automata` (default `notebook_outputs/automata`).

# %%
import os
import sys
from pathlib import Path

import jax
import matplotlib
import numpy as np
import optax

if "ipykernel" not in sys.modules:  # a script or a test: no display (Jupyter plots inline)
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

import diffsim
from diffsim import automata as ca

OUT = Path(os.environ.get("DIFFSIM_NOTEBOOK_OUT", "notebook_outputs")) / "automata"
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Simulate: rule 110 from a random row

# %%
RULE = 110
rows = ca.elementary_data(RULE, width=64, frames=40, key=jax.random.key(0))
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.imshow(np.asarray(rows), cmap="binary", interpolation="nearest")
ax.set(xlabel="cell", ylabel="time step", title=f"rule {RULE} (periodic row of 64)")
fig.savefig(OUT / "rule110.png", dpi=100, bbox_inches="tight")

# %% [markdown]
# ## Infer the rule from the rows alone
#
# The loss is the cross-entropy of predicting each row from the one before, through the
# soft automaton; `diffsim.fit` is the training loop (with a progress bar).

# %%
net = ca.LocalRuleNet(1, 16, 16, key=jax.random.key(1))


def loss_fn(model, batch, key):
    return ca.rule_inference_loss(model, rows)


result = diffsim.fit(loss_fn, net, optax.adam(0.02), steps=300, key=jax.random.key(2))
print(f"loss {result.history[0]['loss']:.3f} -> {result.history[-1]['loss']:.2e} nats/cell")

# %% [markdown]
# ## Read the table off the network
#
# Entry `4 l + 2 c + r` is the next state for neighbourhood `(l, c, r)`. Configurations
# that never occur in the data cannot be identified; they are reported as -1, not guessed.

# %%
learned = np.asarray(result.params.table())
truth = np.asarray(ca.true_table(ca.ElementaryRule(RULE)))
observed = np.asarray(ca.observed_configurations(rows, 1))
score = ca.compare_tables(learned, truth, observed)
print("learned:", ca.reported_table(learned, observed), " truth:", truth)
print(score)
