"""Throughput against device count: Lorenz ensemble, cart-pole BPTT, data-parallel training.

Each device count runs in its own subprocess (on the CPU the count is fixed when JAX
starts: `XLA_FLAGS=--xla_force_host_platform_device_count=N`), on a one-axis mesh from
`diffsim.parallel`. Three workloads, each with its batch split across the mesh and a
cross-device reduction that the compiler inserts:

- `lorenz`: an ensemble of Lorenz-63 trajectories (RK4, `diffsim.ode.solve` under
  `vmap`), final states and their ensemble mean; items are trajectories.
- `cartpole`: BPTT gradients of the mean cost of cart-pole rollouts under a shared
  linear feedback gain (`diffsim.rollout` of the `diffsim.control` cart-pole); items are
  rollouts.
- `potential`: data-parallel training of a SchNet potential (`diffsim.potentials`) by
  force matching on Lennard-Jones 13-atom clusters: one optax step with the batch
  sharded and the parameters replicated (as `diffsim.fit` does); items are structures.

Strong scaling keeps the global batch fixed; weak scaling keeps the batch per device
fixed (the strong batch divided by the largest device count). The communication share
is 1 - t_local / t_full, with t_full the whole sharded step and t_local the same
per-shard computation in a `shard_map` without the cross-device reduction (what an
ideal interconnect would cost). Forced host devices share this machine's cores, so the
speed-up is bounded by the core count (`os.cpu_count()`, recorded). Each device count
also checks its results against one device's: the Lorenz states (no reduction crosses
devices, but XLA vectorises a 4096-row and a 1024-row batch differently, and the chaotic
flow amplifies the last-bit differences: 3.7e-6 relative after 1000 steps in float32),
the cart-pole gradient and the potential's gradient to float32 reduction order, and
`diffsim.fit` on the potential for a few steps.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import numpy as np

RUN_TIME = "~12 min"


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    devices: list[int] = dataclasses.field(
        default_factory=lambda: [1, 2, 4], metadata={"min": 1, "max": 64}
    )
    lorenz_trajectories: int = dataclasses.field(default=4096, metadata={"min": 1})
    lorenz_steps: int = dataclasses.field(default=1000, metadata={"min": 1})
    cartpole_rollouts: int = dataclasses.field(default=1024, metadata={"min": 1})
    cartpole_steps: int = dataclasses.field(default=100, metadata={"min": 1})
    potential_batch: int = dataclasses.field(default=32, metadata={"min": 1})
    potential_frames: int = dataclasses.field(default=256, metadata={"min": 1})
    potential_features: int = dataclasses.field(default=32, metadata={"min": 1})
    fit_steps: int = dataclasses.field(default=10, metadata={"min": 1})
    repeats: int = dataclasses.field(default=5, metadata={"min": 1, "max": 100})
    timeout_s: float = dataclasses.field(default=900.0, metadata={"min_exclusive": 0})

    def __post_init__(self):
        if not self.devices:
            raise ValueError("devices: give at least one device count")
        if self.devices[0] != 1:
            raise ValueError(f"devices must start at 1 (the reference), got {self.devices}")
        biggest = max(self.devices)
        for name in ("lorenz_trajectories", "cartpole_rollouts", "potential_batch"):
            value = getattr(self, name)
            if value % biggest:
                raise ValueError(
                    f"{name} = {value} must be a multiple of the largest device count {biggest}"
                )
        if self.potential_frames < self.potential_batch:
            raise ValueError(
                f"potential_frames = {self.potential_frames} must be >= potential_batch = "
                f"{self.potential_batch}"
            )


WORKLOADS = {
    "lorenz": ("trajectories", "lorenz_trajectories"),
    "cartpole": ("rollouts", "cartpole_rollouts"),
    "potential": ("structures", "potential_batch"),
}


# --- the worker: one process, one device count ---------------------------------------


def _timed(fn, args, repeats: int) -> tuple[float, float]:
    """Median wall time of `fn(*args)` after one compiling call, and that call's time (s)."""
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), first


def _sharded_pair(per_example, reduce, mesh):
    """`full`: jit over the sharded batch with the reduction; `local`: shard_map without it."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    from diffsim.parallel import BATCH

    rep = NamedSharding(mesh, PartitionSpec())
    full = jax.jit(lambda p, b: reduce(per_example(p, b)), out_shardings=rep)

    def body(p, b):  # one shard's work; a leading axis of 1 stacks the shards
        return jax.tree.map(lambda x: jnp.expand_dims(x, 0), reduce(per_example(p, b)))

    local = jax.jit(
        jax.shard_map(
            body,
            mesh=mesh,
            in_specs=(PartitionSpec(), PartitionSpec(BATCH)),
            out_specs=PartitionSpec(BATCH),
            check_vma=False,  # a scan's carry mixes replicated and per-shard values
        )
    )
    return full, local


def _lorenz(cfg: dict, mesh, batch: int):
    import jax
    import jax.numpy as jnp

    from diffsim import ode

    def f(t, y, args):
        sigma, rho, beta = args
        x, yy, z = y[0], y[1], y[2]
        return jnp.stack([sigma * (yy - x), x * (rho - z) - yy, x * yy - beta * z])

    dt = 0.005
    steps = cfg["lorenz_steps"]
    ts = jnp.array([0.0, steps * dt])
    params = jnp.array([10.0, 28.0, 8.0 / 3.0])

    def final_states(p, y0s):
        return jax.vmap(lambda y0: ode.solve(f, y0, ts, p, dt=dt)[-1])(y0s)

    y0 = jnp.array([1.0, 1.0, 20.0]) + jax.random.normal(jax.random.key(cfg["seed"]), (batch, 3))
    return final_states, lambda s: jnp.mean(s, axis=0), params, y0


def _cartpole(cfg: dict, mesh, batch: int):
    import jax
    import jax.numpy as jnp

    import diffsim
    from diffsim import control

    model = control.Discretised(control.CartPole(), dt=0.02)
    steps = cfg["cartpole_steps"]
    weights = jnp.array([1.0, 10.0, 0.1, 0.1])

    def cost(gain, x0):
        def step(x, _):
            u = -(gain @ x)
            x_next = model(x, u)
            return x_next, jnp.sum(weights * x_next**2) + 0.01 * jnp.sum(u**2)

        _, costs = diffsim.rollout(step, x0, length=steps, grad=diffsim.BPTT())
        return jnp.sum(costs) * model.dt

    def grads(gain, x0s):  # per-rollout cost gradients, averaged by `reduce`
        return jax.vmap(jax.grad(cost), in_axes=(None, 0))(gain, x0s)

    gain = jnp.array([[-1.0, -20.0, -2.0, -3.0]])
    x0s = jax.random.uniform(
        jax.random.key(cfg["seed"] + 1),
        (batch, 4),
        minval=jnp.array([-0.5, -0.2, -0.5, -0.5]),
        maxval=jnp.array([0.5, 0.2, 0.5, 0.5]),
    )
    return grads, lambda g: jnp.mean(g, axis=0), gain, x0s


def _lj_frames(n_frames: int, seed: int):
    """LJ13 clusters (argon-like, Angstrom / eV) jiggled about the fcc sites; exact labels."""
    import jax
    import jax.numpy as jnp

    sigma, eps = 3.4, 0.0104
    sites = np.array(
        [[0, 0, 0]]
        + [[a, b, 0] for a in (-1, 1) for b in (-1, 1)]
        + [[a, 0, c] for a in (-1, 1) for c in (-1, 1)]
        + [[0, b, c] for b in (-1, 1) for c in (-1, 1)],
        dtype=np.float64,
    ) * (2 ** (1 / 6) * sigma / np.sqrt(2))
    rng = np.random.default_rng(seed)
    positions = sites[None] + 0.15 * rng.standard_normal((n_frames, 13, 3))

    def energy(r):
        d = r[:, None, :] - r[None, :, :]
        r2 = jnp.sum(d**2, -1) + jnp.eye(13)
        s6 = (sigma**2 / r2) ** 3
        return 0.5 * jnp.sum((4 * eps * (s6**2 - s6)) * (1 - jnp.eye(13)))

    pos = jnp.asarray(positions, jnp.float32)
    energies = jax.vmap(energy)(pos)
    forces = -jax.vmap(jax.grad(energy))(pos)
    return pos, energies, forces


def _potential(cfg: dict, mesh, batch: int):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from diffsim import potentials as pot

    pos, energies, forces = _lj_frames(cfg["potential_frames"], cfg["seed"])
    model = pot.SchNet(
        (18,), cutoff=6.0, features=cfg["potential_features"], layers=2, key=jax.random.key(0)
    )
    species = model.species_of([18] * 13)
    diff, static = eqx.partition(model, eqx.is_inexact_array)

    def per_example_loss(d, b):
        p, e, f = b
        m = eqx.combine(d, static)
        e_hat, f_hat = pot.batch_energy_and_forces(m, species, p)
        return (e_hat - e) ** 2 / 13**2, jnp.mean((f_hat - f) ** 2, axis=(1, 2))

    def grads(d, b):  # the gradient of this (sub-)batch's summed loss
        def total(dd):
            le, lf = per_example_loss(dd, b)
            return jnp.sum(0.01 * le + lf)

        return jax.grad(total)(d)

    def reduce(g):  # summed over the shards by the compiler, or kept per shard
        return g

    batch_arrays = (pos[:batch], energies[:batch], forces[:batch])
    return grads, reduce, diff, batch_arrays, (model, species, pos, energies, forces)


def _fit_potential(cfg: dict, mesh, data) -> dict:
    """A few `diffsim.fit` steps, data-parallel on `mesh`: the loss history and the params."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    import diffsim
    from diffsim import potentials as pot

    model, species, pos, energies, forces = data
    batch = cfg["potential_batch"]
    n = pos.shape[0]

    def batch_fn(key, step):
        idx = jax.random.choice(key, n, (batch,), replace=False)
        return pos[idx], energies[idx], forces[idx]

    def loss_fn(m, b, key):
        p, e, f = b
        e_hat, f_hat = pot.batch_energy_and_forces(m, species, p)
        return jnp.mean(0.01 * (e_hat - e) ** 2 / 13**2) + jnp.mean((f_hat - f) ** 2)

    result = diffsim.fit(
        loss_fn,
        model,
        optax.adam(1e-3),
        steps=cfg["fit_steps"],
        key=jax.random.key(cfg["seed"]),
        batch_fn=batch_fn,
        log_every=1,
        progress=False,
        mesh=mesh,
    )
    leaves = jax.tree.leaves(eqx.filter(result.params, eqx.is_inexact_array))
    flat = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in leaves])
    return {"losses": [r["loss"] for r in result.history], "params": flat}


def worker(cfg: dict) -> dict:
    """Measures every workload on all of this process's devices; gives a JSON-able dict."""
    import jax

    from diffsim.parallel import make_mesh, replicate, shard_batch

    n = jax.device_count()
    mesh = make_mesh(n)
    biggest = max(cfg["devices"])
    out: dict = {"devices": n, "platform": jax.devices()[0].platform, "workloads": {}}
    checks: dict = {}
    builders = {"lorenz": _lorenz, "cartpole": _cartpole, "potential": _potential}
    for name, (_, size_key) in WORKLOADS.items():
        strong = cfg[size_key]
        # built once with the strong batch; the weak batch is its first rows, so at the
        # largest device count (weak = strong) the compiled programs are reused
        per_example, reduce, params, data, *extra = builders[name](cfg, mesh, strong)
        full, local = _sharded_pair(per_example, reduce, mesh)
        params = replicate(params, mesh)
        rows = {}
        for mode, batch in (("strong", strong), ("weak", strong // biggest * n)):
            sub = shard_batch(jax.tree.map(lambda x, b=batch: x[:b], data), mesh)
            t_full, first_full = _timed(full, (params, sub), cfg["repeats"])
            t_local, first_local = _timed(local, (params, sub), cfg["repeats"])
            rows[mode] = {
                "batch": batch,
                "t_full_s": t_full,
                "t_local_s": t_local,
                "first_call_s": first_full + first_local,
                "throughput": batch / t_full,
                "comm_share": max(0.0, 1.0 - t_local / t_full),
            }
            if mode == "strong":
                if name == "lorenz":
                    value = jax.jit(per_example)(params, sub)  # the final states themselves
                else:
                    value = full(params, sub)
                leaves = jax.tree.leaves(value)
                checks[name] = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in leaves])
        if name == "potential":
            fitted = _fit_potential(cfg, mesh, extra[0])
            checks["fit_params"] = fitted["params"]
            out["fit_losses"] = fitted["losses"]
        out["workloads"][name] = rows
    out["checks"] = {k: v.tolist() for k, v in checks.items()}
    return out


def _worker_main() -> None:
    cfg = json.loads(sys.argv[1])
    result = worker(cfg)
    print("SCALING-RESULT " + json.dumps(result), flush=True)


def _spawn(cfg, devices: int) -> dict:
    env = dict(os.environ)
    flags = " ".join(
        f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform" not in f
    )
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS", "cpu") or "cpu"
    import jax

    cache = jax.config.jax_compilation_cache_dir  # the run's own (diffsim run turns it on)
    if cache:
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    code = "from diffsim_experiments.scaling import _worker_main; _worker_main()"
    payload = json.dumps(dataclasses.asdict(cfg))
    proc = subprocess.run(
        [sys.executable, "-c", code, payload],
        env=env,
        capture_output=True,
        text=True,
        timeout=cfg.timeout_s,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("SCALING-RESULT "):
            return json.loads(line[len("SCALING-RESULT ") :])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
    raise RuntimeError(
        f"scaling worker with {devices} devices failed (rc {proc.returncode}): {tail}"
    )


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    results = {}
    load = os.getloadavg()[0]
    run.log(f"cores: {os.cpu_count()}, load {load:.2f}")
    bar = tqdm(total=len(cfg.devices), desc="device counts", leave=False, disable=run.quiet)
    try:
        for n in cfg.devices:
            results[n] = _spawn(cfg, n)
            run.log(f"{n} device(s): done")
            bar.update(1)
    finally:
        bar.close()
    (run.dir / "scaling.json").write_text(json.dumps(results, indent=1) + "\n")

    ref = results[1]
    metrics: dict = {"cores": os.cpu_count(), "load_at_start": round(load, 2)}
    lines = [
        "| workload | devices | strong batch | strong items/s | speed-up | weak batch | "
        "weak items/s | weak efficiency | comm share (strong) | max rel. diff vs 1 device |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in WORKLOADS:
        base = ref["workloads"][name]
        for n in cfg.devices:
            rows = results[n]["workloads"][name]
            s, w = rows["strong"], rows["weak"]
            speedup = s["throughput"] / base["strong"]["throughput"]
            # weak efficiency: per-device throughput against one device's, same batch per device
            weak_eff = w["throughput"] / (n * base["weak"]["throughput"])
            diff = _rel(results[n]["checks"][name], ref["checks"][name])
            lines.append(
                f"| {name} | {n} | {s['batch']} | {s['throughput']:.4g} | {speedup:.2f}× | "
                f"{w['batch']} | {w['throughput']:.4g} | {weak_eff:.2f} | "
                f"{s['comm_share']:.2f} | {diff:.1e} |"
            )
            if n == max(cfg.devices):
                metrics[f"{name}_speedup_{n}"] = round(speedup, 3)
                metrics[f"{name}_weak_efficiency_{n}"] = round(weak_eff, 3)
                metrics[f"{name}_comm_share_{n}"] = round(s["comm_share"], 3)
            if n > 1:
                metrics[f"{name}_max_rel_diff"] = max(metrics.get(f"{name}_max_rel_diff", 0), diff)
    fit_diff = max(
        _rel(results[n]["checks"]["fit_params"], ref["checks"]["fit_params"]) for n in cfg.devices
    )
    loss_diff = max(_rel(results[n]["fit_losses"], ref["fit_losses"]) for n in cfg.devices)
    metrics["fit_params_max_rel_diff"] = fit_diff
    metrics["fit_loss_max_rel_diff"] = loss_diff
    table = "\n".join(lines)
    (run.dir / "scaling_table.md").write_text(table + "\n")
    run.log("scaling (forced CPU host devices):\n" + table)

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    ns = np.array(cfg.devices)
    for j, (name, (unit, _)) in enumerate(WORKLOADS.items()):
        ax = axes[0, j]
        strong = [results[n]["workloads"][name]["strong"]["throughput"] for n in cfg.devices]
        weak = [results[n]["workloads"][name]["weak"]["throughput"] for n in cfg.devices]
        ax.plot(ns, strong, "o-", label="strong (fixed global batch)")
        ax.plot(ns, weak, "s-", label="weak (fixed batch per device)")
        ax.plot(ns, strong[0] * ns, "k:", label="ideal (linear)")
        ax.axvline(os.cpu_count() or 1, color="grey", lw=0.8, ls="--", label="CPU cores")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("devices (forced CPU host devices)")
        ax.set_ylabel(f"throughput ({unit}/s)")
        ax.set_title(name)
        ax.legend(fontsize=7, loc="upper left")
        ax = axes[1, j]
        share = [results[n]["workloads"][name]["strong"]["comm_share"] for n in cfg.devices]
        ax.bar([str(n) for n in cfg.devices], share, color="tab:red")
        ax.set_ylim(0, 1)
        ax.set_xlabel("devices (forced CPU host devices)")
        ax.set_ylabel("communication share of step time (fraction)")
    fig.suptitle(f"diffsim.parallel on {os.cpu_count()} CPU cores (load {load:.1f} at start)")
    run.save_figure(fig, "scaling.png")
    return metrics


if __name__ == "__main__":  # pragma: no cover - the worker is started with -c
    _worker_main()
