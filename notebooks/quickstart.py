# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # diffsim quickstart
#
# A simulator is a step run over time by one `rollout`; its gradient comes from
# `jax.grad` through it, with a gradient strategy you choose. Open this file in Jupyter
# with jupytext (`jupytext --to ipynb notebooks/quickstart.py`) or run it as a script;
# the test suite runs it, so it stays true.

# %%
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

if "ipykernel" not in sys.modules:  # a script or a test: no display (Jupyter plots inline)
    matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt

import diffsim
from diffsim import ode

jax.config.update("jax_enable_x64", True)

# %% [markdown]
# ## 1. Simulate: a damped pendulum with RK4


# %%
def pendulum(t, y, damping):
    theta, omega = y
    return jnp.stack([omega, -9.81 * jnp.sin(theta) - damping * omega])


ts = jnp.linspace(0.0, 5.0, 101)
y0 = jnp.array([2.0, 0.0])
ys = ode.solve(pendulum, y0, ts, 0.5, solver=ode.RK4(), dt=0.01)
print("final angle:", float(ys[-1, 0]))

# %% [markdown]
# ## 2. Differentiate: how does the final energy depend on the damping?
# Every gradient mode gives the same number; they differ in memory and time.


# %%
def final_energy(damping, grad):
    theta, omega = ode.solve(pendulum, y0, ts, damping, solver=ode.RK4(), dt=0.01, grad=grad)[-1]
    return 0.5 * omega**2 + 9.81 * (1 - jnp.cos(theta))


for grad in [
    diffsim.BPTT(),
    diffsim.Checkpointed(),
    diffsim.DiscreteAdjoint(),
    ode.ContinuousAdjoint(),
]:
    g = jax.grad(final_energy)(0.5, grad)
    print(f"{type(grad).__name__:20s} dE/d(damping) = {float(g):.10f}")

# Check against a central finite difference.
eps = 1e-6
fd = (final_energy(0.5 + eps, diffsim.BPTT()) - final_energy(0.5 - eps, diffsim.BPTT())) / (2 * eps)
print("finite difference    dE/d(damping) =", f"{float(fd):.10f}")

# %% [markdown]
# ## 3. Use the gradient: find the damping that leaves 10% of the initial energy

# %%
E0 = 9.81 * (1 - jnp.cos(2.0))
loss = lambda d: (final_energy(d, diffsim.BPTT()) - 0.1 * E0) ** 2
d = 0.1
for _ in range(20):  # Newton's method on the loss, derivatives by jax.grad
    d = d - jax.grad(loss)(d) / jax.grad(jax.grad(loss))(d)
print("damping:", float(d), "final energy / initial:", float(final_energy(d, diffsim.BPTT()) / E0))

# %%
fig, ax = plt.subplots(figsize=(6, 3))
for damping in [0.1, float(d), 2.0]:
    ax.plot(ts, ode.solve(pendulum, y0, ts, damping, dt=0.01)[:, 0], label=f"damping {damping:.3f}")
ax.set_xlabel("t (s)")
ax.set_ylabel("angle (rad)")
ax.legend()
# Outputs go to a folder this notebook names, never the current one.
OUT = Path(os.environ.get("DIFFSIM_NOTEBOOK_OUT", "notebook_outputs")) / "quickstart"
figure = Path(os.environ.get("QUICKSTART_FIGURE", OUT / "quickstart.png"))
figure.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(figure, dpi=100, bbox_inches="tight")
