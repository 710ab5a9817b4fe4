"""A small training experiment used by the runner tests (run as `module:function`)."""

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import diffsim


@dataclasses.dataclass(frozen=True)
class Optim:
    lr: float = dataclasses.field(default=1e-2, metadata={"min_exclusive": 0})
    name: str = dataclasses.field(default="adam", metadata={"choices": ["adam", "sgd"]})


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    steps: int = dataclasses.field(default=200, metadata={"min": 1})
    width: int = dataclasses.field(default=16, metadata={"min": 1, "max": 1024})
    delay: float = dataclasses.field(default=0.0, metadata={"min": 0})
    checkpoint_every: int = 10
    fail_at: int = dataclasses.field(default=0, metadata={"min": 0})
    # Seconds each checkpoint write pauses after writing its temporary file and before the
    # rename (a window for the crash test to kill the process mid-write).
    write_delay: float = dataclasses.field(default=0.0, metadata={"min": 0})
    optim: Optim = Optim()


def run(cfg: Config, run):
    if cfg.write_delay:
        import os

        fsync = os.fsync

        def slow_fsync(fd):
            fsync(fd)
            # Only a checkpoint's temporary file: metrics.jsonl is fsynced every step.
            if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
                time.sleep(cfg.write_delay)

        os.fsync = slow_fsync  # this process only: the run is a subprocess of the test
    key = jax.random.key(cfg.seed)
    model = eqx.nn.MLP(1, 1, cfg.width, 2, key=jax.random.fold_in(key, 1))

    def batch_fn(k, step):
        x = jax.random.uniform(k, (32, 1), minval=-2, maxval=2)
        return x, jnp.sin(2 * x)

    def loss_fn(m, batch, k):
        x, y = batch
        return jnp.mean((jax.vmap(m)(x) - y) ** 2)

    opt = {"adam": optax.adam, "sgd": optax.sgd}[cfg.optim.name](cfg.optim.lr)

    def stop(rec):
        if cfg.fail_at and rec["step"] == cfg.fail_at:
            raise RuntimeError(f"toy failure at step {cfg.fail_at}\nsecond line")
        time.sleep(cfg.delay)
        return False

    result = diffsim.fit(
        loss_fn,
        model,
        opt,
        steps=cfg.steps,
        key=jax.random.fold_in(key, 2),
        batch_fn=batch_fn,
        log_every=1,
        checkpoint_every=cfg.checkpoint_every,
        directory=run.dir,
        resume=run.resume,
        progress=False,
        stop_fn=stop,
    )
    return {"final_loss": result.history[-1]["loss"], "steps": len(result.history)}
