# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Control: swing a pendulum up with iLQR, and differentiate through the trajectory
#
# A controlled system is a step `x_{t+1} = f(x_t, u_t)` (here RK4 on the pendulum's
# equations, with a smooth torque limit); a trajectory is a rollout and its cost a sum.
# iLQR optimises the torques; `jax.grad` of the same cost gives the sensitivity to the
# controls and to the physical parameters, and the costate recursion gives the same
# numbers. Open with `jupyter lab notebooks/control.py` (jupytext) or run as a script;
# figures go to `$DIFFSIM_NOTEBOOK_OUT/control` (default `notebook_outputs/control`).

# %%
import os
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

if "ipykernel" not in sys.modules:  # a script or a test: no display (Jupyter plots inline)
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

from diffsim import control

jax.config.update("jax_enable_x64", True)  # float64 for the gradient checks below
OUT = Path(os.environ.get("DIFFSIM_NOTEBOOK_OUT", "notebook_outputs")) / "control"
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The problem: hanging down (angle 0) to upright (angle pi) in 4 s, |torque| <= 4 N m
#
# Gravity needs 9.8 N m to lift the 1 kg, 1 m pendulum straight up, so the torques must
# pump it: the optimiser has to discover the swing.

# %%
dt, T = 0.05, 80
pendulum = control.Pendulum()  # mass 1 kg, length 1 m, damping 0.1
model = control.Discretised(pendulum, dt, limits=control.SmoothSaturation(-4.0, 4.0))
cost = control.Cost(
    control.control_effort(0.01),
    control.terminal_quadratic(jnp.diag(jnp.array([100.0, 10.0])), x_goal=jnp.array([jnp.pi, 0])),
)
x0 = jnp.zeros(2)
us0 = 0.1 * jax.random.normal(jax.random.key(0), (T, 1))

# %%
res = control.ilqr(model, cost, x0, us0, max_iter=100)
print(res)  # a short summary: shapes and scalars, not arrays

# %%
ts = np.arange(T + 1) * dt
torque = np.asarray(jax.vmap(model.limits)(res.us))[:, 0]
fig, (a, b) = plt.subplots(2, 1, sharex=True, figsize=(6, 4.5))
a.plot(ts, np.asarray(res.xs[:, 0]), label="angle")
a.axhline(np.pi, color="gray", ls="--", lw=0.8)
a.set_ylabel("angle (rad)")
b.step(ts[:-1], torque, where="post")
b.set(xlabel="time (s)", ylabel="torque (N m)")
fig.suptitle(f"iLQR swing-up: cost {float(res.cost):.3f} in {int(res.iterations)} iterations")
fig.savefig(OUT / "swingup.png", dpi=100, bbox_inches="tight")
print(f"final angle error {abs(float(res.xs[-1, 0]) - np.pi):.2e} rad")

# %% [markdown]
# ## Gradients through the trajectory
#
# The cost of the optimised torques as a function of the pendulum's mass: one
# `jax.grad` through the 80-step rollout, checked against a central difference and
# against the explicit costate (adjoint) recursion.


# %%
def cost_of_mass(mass):
    m = eqx.tree_at(lambda md: md.system.mass, model, mass)
    return control.trajectory_cost(m, cost, x0, res.us)


g = jax.grad(cost_of_mass)(1.0)
h = 1e-5
fd = (cost_of_mass(1.0 + h) - cost_of_mass(1.0 - h)) / (2 * h)
adj = control.costate_gradient(model, cost, x0, res.us)
print(f"dJ/dmass: grad {float(g):.8f}, finite difference {float(fd):.8f}")
print(f"dJ/dmass from the costates: {float(adj.grad_model.system.mass):.8f}")
