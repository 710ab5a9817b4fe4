"""The cost of XLA's deterministic-ops flag, which `diffsim run` sets by default.

`diffsim run` adds `--xla_gpu_deterministic_ops=true` to `XLA_FLAGS` (GPU reductions and
scatters in a fixed order, so a resumed training run is bitwise equal to an uninterrupted
one). The CPU backend ignores it; this measures that on the machine at hand: the same
programs (a data-parallel training step of an MLP on 2 forced host devices, BPTT
gradients of 256 cart-pole rollouts) in two fresh processes, with and without the flag,
alternating; outputs must be bitwise equal before the times are compared.

    python benchmarks/bench_parallel.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

CHILD = r"""
import json, time
import jax, jax.numpy as jnp, numpy as np, optax, equinox as eqx
import diffsim
from diffsim import control
from diffsim.parallel import make_mesh, replicate, shard_batch

mesh = make_mesh(2)
model = eqx.nn.MLP(16, 1, 128, 3, key=jax.random.key(0))
x = jax.random.normal(jax.random.key(1), (1024, 16)); y = jnp.sin(x.sum(1))
params, static = eqx.partition(model, eqx.is_inexact_array)
opt = optax.adam(1e-3); state = opt.init(params)

@jax.jit
def train_step(p, s, xb, yb):
    def loss(p):
        m = eqx.combine(p, static)
        return jnp.mean((jax.vmap(m)(xb)[:, 0] - yb) ** 2)
    g = jax.grad(loss)(p)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s

dyn = control.Discretised(control.CartPole(), dt=0.02)
def cost(k, x0):
    def step(s, _):
        s = dyn(s, -(k @ s)); return s, jnp.sum(s ** 2)
    return jnp.sum(diffsim.rollout(step, x0, length=100)[1])
bptt = jax.jit(lambda k, x0s: jnp.mean(jax.vmap(jax.grad(cost), (None, 0))(k, x0s), 0))
k0 = jnp.array([[-1.0, -20.0, -2.0, -3.0]])
x0s = 0.1 * jax.random.normal(jax.random.key(2), (256, 4))

args = (replicate(params, mesh), replicate(state, mesh), *shard_batch((x, y), mesh))
calls = {"train_step": (lambda: train_step(*args)), "cartpole_bptt": (lambda: bptt(k0, x0s))}
texts = {"train_step": train_step.lower(*args).compile().as_text(),
         "cartpole_bptt": bptt.lower(k0, x0s).compile().as_text()}
out = {}
for name, fn in calls.items():
    r = jax.block_until_ready(fn())
    ts = []
    for _ in range(REPEATS):
        t0 = time.perf_counter(); jax.block_until_ready(fn()); ts.append(time.perf_counter() - t0)
    leaves = [np.asarray(l) for l in jax.tree.leaves(r)]
    out[name] = {"t": float(np.median(ts)), "hash": hash(b"".join(l.tobytes() for l in leaves)),
                 "program": hash(texts[name])}
print("RESULT " + json.dumps(out))
"""


def child(deterministic: bool, repeats: int) -> dict:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "deterministic" not in f]
    flags.append("--xla_force_host_platform_device_count=2")
    if deterministic:
        flags.append("--xla_gpu_deterministic_ops=true")
    env["XLA_FLAGS"] = " ".join(flags)
    env["PYTHONHASHSEED"] = "0"
    code = CHILD.replace("REPEATS", str(repeats))
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, 10 repeats")
    args = parser.parse_args()
    rounds, repeats = (1, 10) if args.quick else (3, 30)
    times: dict[str, dict[str, list[float]]] = {}
    same: dict[str, bool] = {}
    for _ in range(rounds):
        results = {flag: child(flag, repeats) for flag in (False, True)}
        for name in results[False]:
            assert results[False][name]["hash"] == results[True][name]["hash"], name
            same[name] = results[False][name]["program"] == results[True][name]["program"]
            for flag in (False, True):
                times.setdefault(name, {}).setdefault(str(flag), []).append(
                    results[flag][name]["t"]
                )
    load = f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (cpu)"
    print(f"--xla_gpu_deterministic_ops=true on the CPU ({load}); outputs bitwise equal")
    print(
        f"{'program':<16} {'without (ms)':>13} {'with (ms)':>10} {'with/without':>13} "
        "compiled program identical"
    )
    for name, t in times.items():
        a, b = float(np.median(t["False"])), float(np.median(t["True"]))
        print(f"{name:<16} {1e3 * a:>13.3f} {1e3 * b:>10.3f} {b / a:>13.3f} {same[name]}")


if __name__ == "__main__":
    main()
