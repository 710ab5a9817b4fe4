"""A user's experiment (`parallel_experiment:run`) for the runner's `--devices` tests:
a data-parallel `diffsim.fit` under the runner's mesh, and the devices JAX sees."""

import dataclasses

import jax
import jax.numpy as jnp
import optax

import diffsim


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    steps: int = 15
    float64: bool = True


def run(cfg, run):
    x = jax.random.normal(jax.random.key(cfg.seed), (256, 4))
    y = x @ jnp.array([1.0, -2.0, 0.5, 3.0])

    def batch_fn(key, step):
        idx = jax.random.choice(key, 256, (32,), replace=False)
        return x[idx], y[idx]

    def loss_fn(w, batch, key):
        xb, yb = batch
        return jnp.mean((jnp.tanh(xb @ w) - jnp.tanh(yb / 4)) ** 2)

    result = diffsim.fit(
        loss_fn,
        jnp.zeros(4),
        optax.adam(0.05),
        steps=cfg.steps,
        key=jax.random.key(1),
        batch_fn=batch_fn,
        progress=False,
        directory=run.dir,
        resume=run.resume,
    )
    sharding = getattr(result.params, "sharding", None)
    return {
        "loss": result.history[-1]["loss"],
        "w0": float(result.params[0]),
        "jax_devices": jax.device_count(),
        "params_devices": len(sharding.device_set) if sharding is not None else 1,
    }
