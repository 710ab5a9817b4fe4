"""Run in a subprocess by test_parallel.py, with forced CPU host devices (the count is
fixed when JAX starts). Prints one line `RESULT <json>`.

`python parallel_worker.py devices RUN_DIR`: one process with 4 devices: an ODE ensemble
and data-parallel `fit` on 1 and on 4 devices, a resume on 4 devices and on 1.
`python parallel_worker.py multihost RUN_DIR`: one of two processes joined by
`diffsim.parallel.initialize` from the DIFFSIM_* environment variables.
"""

import functools
import json
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import diffsim  # noqa: E402
from diffsim import ode  # noqa: E402
from diffsim.parallel import gather, make_mesh, shard_batch, shard_vmap  # noqa: E402

SETTINGS = None  # set by `initialize` in a multi-process run


@functools.cache
def data():  # built on first use: a multi-process run must not start JAX before initialize
    x = np.random.default_rng(0).standard_normal((512, 6))
    return x, np.sin(x @ np.linspace(-1.0, 1.0, 6))


def lorenz(t, y, args):
    return jnp.stack(
        [10.0 * (y[1] - y[0]), y[0] * (28.0 - y[2]) - y[1], y[0] * y[1] - 8 / 3 * y[2]]
    )


def final_state(y0):
    return ode.solve(lorenz, y0, np.array([0.0, 0.5]), dt=0.01)[-1]


def ensemble(mesh, n=64):
    y0 = jnp.array([1.0, 1.0, 20.0]) + jax.random.normal(jax.random.key(1), (n, 3))
    sharded = shard_vmap(final_state, mesh)(shard_batch(y0, mesh))
    mean = jax.jit(lambda y: jnp.mean(y, 0))(sharded)  # a reduction across the devices
    return np.asarray(gather(sharded)), np.asarray(gather(mean))


def batch_fn(key, step):
    x, y = map(jnp.asarray, data())
    idx = jax.random.choice(key, x.shape[0], (64,), replace=False)
    return x[idx], y[idx]


def loss_fn(model, batch, key):
    x, y = batch
    return jnp.mean((jax.vmap(model)(x)[:, 0] - y) ** 2)


def model0():
    return eqx.nn.MLP(6, 1, 16, 2, key=jax.random.key(2))


def train(mesh, steps, directory=None, resume=False):
    result = diffsim.fit(
        loss_fn,
        model0(),
        optax.adam(1e-2),
        steps=steps,
        key=jax.random.key(3),
        batch_fn=batch_fn,
        log_every=1,
        progress=False,
        directory=directory,
        resume=resume,
        checkpoint_every=5,
        mesh=mesh,
    )
    leaves = jax.tree.leaves(eqx.filter(result.params, eqx.is_inexact_array))
    flat = np.concatenate([np.ravel(gather(x)) for x in leaves])
    return flat, [r["loss"] for r in result.history]


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def devices(out: Path):
    one, four = make_mesh(1), make_mesh(4)
    s1, m1 = ensemble(one)
    s4, m4 = ensemble(four)
    p1, l1 = train(one, 20)
    p4, l4 = train(four, 20)
    import shutil

    train(four, 10, out / "ckpt")  # interrupted after 10 steps ...
    shutil.copytree(out / "ckpt", out / "ckpt_on1")
    p4r, l4r = train(four, 20, out / "ckpt", resume=True)  # ... and resumed to 20
    # the 4-device checkpoint resumed on one device (checkpoints hold whole arrays)
    p_on1, l_on1 = train(None, 20, out / "ckpt_on1", resume=True)
    return {
        "states_diff": float(np.max(np.abs(s4 - s1))),
        "mean_rel_diff": rel(m4, m1),
        "fit_rel_diff": rel(p4, p1),
        "loss_rel_diff": rel(l4, l1),
        "resume_bitwise": bool(np.array_equal(p4r, p4)),
        "resume_losses_bitwise": l4r == l4,
        "on1_rel_diff": rel(p_on1, p1),
        "on1_losses_first10_equal": l_on1[:10] == l4[:10],
        "shard_error": _shard_error(four),
    }


def _shard_error(mesh):
    try:
        shard_batch(jnp.zeros((6, 3)), mesh)
    except ValueError as e:
        return str(e)
    return ""


def multihost(out: Path):
    mesh = make_mesh()
    states, mean = ensemble(mesh)
    params, losses = train(mesh, 10)
    return {
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "settings": [SETTINGS.coordinator, SETTINGS.num_processes, SETTINGS.process_id],
        "states": states.tolist(),
        "mean": mean.tolist(),
        "params": params.tolist(),
        "losses": losses,
    }


def reference(out: Path):
    """What the multi-host run must give: the same on this process's devices alone."""
    states, mean = ensemble(make_mesh(1))
    params, losses = train(None, 10)
    return {
        "states": states.tolist(),
        "mean": mean.tolist(),
        "params": params.tolist(),
        "losses": losses,
    }


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "multihost":
        from diffsim.parallel import initialize

        # DIFFSIM_COORDINATOR, DIFFSIM_NUM_PROCESSES, DIFFSIM_PROCESS_ID
        SETTINGS = initialize()
    result = {"devices": devices, "multihost": multihost, "reference": reference}[mode](out)
    print("RESULT " + json.dumps(result), flush=True)
