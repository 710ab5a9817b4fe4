"""Forward vs reverse mode: jacfwd vs jacrev crossover, and the cheap-gradient ratio.

For f: R^n -> R the full gradient costs n JVPs by forward mode but one VJP by reverse
mode; for f: R -> R^m the reverse. On MLP-shaped functions the experiment measures wall
time and XLA's operation count of `jacfwd` and `jacrev` over n and m, and plots the
crossover. Then, for an MLP, a GRU over 500 steps (diffsim.rollout), an RK4 ODE solve
(diffsim.ode) and a Lennard-Jones energy (diffsim.molecular), it reports the
cheap-gradient ratio time(value and gradient) / time(value) beside the ratio of
operation counts (Griewank's bound: about 5 at most), and splits the gradient's time into
the forward pass that stores residuals and the backward pass. XLA's cost analysis counts
a loop body once, whatever its trip count, so for the loops (GRU, ODE) the operation
ratio is per step.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import diffsim
import diffsim.molecular as md
from diffsim import ode

from ._autodiff_common import median_time, op_count

CASES = ("mlp", "gru", "ode", "md")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = False
    sizes: list[int] = dataclasses.field(default_factory=lambda: [10, 100, 1000, 10000])
    hidden: int = dataclasses.field(default=32, metadata={"min": 1})
    repeats: int = dataclasses.field(default=3, metadata={"min": 1})
    cheap_repeats: int = dataclasses.field(default=15, metadata={"min": 1})
    cases: list[str] = dataclasses.field(default_factory=lambda: list(CASES))
    mlp_layers: int = dataclasses.field(default=20, metadata={"min": 1})
    mlp_width: int = dataclasses.field(default=64, metadata={"min": 1})
    mlp_batch: int = dataclasses.field(default=64, metadata={"min": 1})
    gru_steps: int = dataclasses.field(default=500, metadata={"min": 1})
    gru_hidden: int = dataclasses.field(default=32, metadata={"min": 1})
    ode_steps: int = dataclasses.field(default=1000, metadata={"min": 1})
    md_atoms: int = dataclasses.field(default=256, metadata={"min": 2})

    def __post_init__(self):
        bad = [c for c in self.cases if c not in CASES]
        if bad:
            raise ValueError(f"key 'cases': unknown {bad}; allowed {list(CASES)}")
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"key 'sizes' must be a non-empty list of ints >= 1, got {self.sizes}")


def many_to_one(n, hidden, key):
    """f: R^n -> R, an MLP with two hidden layers."""
    k1, k2, k3 = jax.random.split(key, 3)
    W1 = jax.random.normal(k1, (hidden, n)) / np.sqrt(n)
    W2 = jax.random.normal(k2, (hidden, hidden)) / np.sqrt(hidden)
    v = jax.random.normal(k3, (hidden,)) / np.sqrt(hidden)
    return lambda x: v @ jnp.tanh(W2 @ jnp.tanh(W1 @ x))


def one_to_many(m, hidden, key):
    """f: R -> R^m, an MLP with two hidden layers."""
    k1, k2, k3 = jax.random.split(key, 3)
    a = jax.random.normal(k1, (hidden,))
    W2 = jax.random.normal(k2, (hidden, hidden)) / np.sqrt(hidden)
    W3 = jax.random.normal(k3, (m, hidden)) / np.sqrt(hidden)
    return lambda x: W3 @ jnp.tanh(W2 @ jnp.tanh(a * x))


def jacobian_costs(cfg: Config, key):
    rows = []
    for size in cfg.sizes:
        for kind, make, x in [
            ("n_to_1", many_to_one, jnp.ones(size) / size),
            ("1_to_m", one_to_many, jnp.asarray(0.3)),
        ]:
            f = make(size, cfg.hidden, jax.random.fold_in(key, size))
            fwd, rev = jax.jit(jax.jacfwd(f)), jax.jit(jax.jacrev(f))
            np.testing.assert_allclose(fwd(x), rev(x), rtol=1e-4, atol=1e-6)
            rows.append(
                {
                    "kind": kind,
                    "size": size,
                    "fwd_s": median_time(fwd, x, repeats=cfg.repeats),
                    "rev_s": median_time(rev, x, repeats=cfg.repeats),
                    "fwd_ops": op_count(jax.jacfwd(f), x),
                    "rev_ops": op_count(jax.jacrev(f), x),
                }
            )
    return rows


def _flatten(module):
    """The module's parameters as one flat vector, and the map back to the module."""
    params, static = eqx.partition(module, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    return flat, lambda p: eqx.combine(unravel(p), static)


def cheap_gradient_cases(cfg: Config, key):
    """(name, scalar function, argument) for each case."""
    cases = {}
    if "mlp" in cfg.cases:
        mlp = eqx.nn.MLP(cfg.mlp_width, 1, cfg.mlp_width, cfg.mlp_layers - 1, key=key)
        x = jax.random.normal(jax.random.fold_in(key, 1), (cfg.mlp_batch, cfg.mlp_width))
        mlp_flat, mlp_of = _flatten(mlp)
        cases["mlp"] = (lambda p: jnp.mean(jax.vmap(mlp_of(p))(x) ** 2), mlp_flat)
    if "gru" in cfg.cases:
        cell = eqx.nn.GRUCell(8, cfg.gru_hidden, key=jax.random.fold_in(key, 2))
        xs = jax.random.normal(jax.random.fold_in(key, 3), (cfg.gru_steps, 8))
        gru_flat, cell_of = _flatten(cell)

        def gru_loss(p):
            c = cell_of(p)
            step = lambda h, x: (c(x, h), None)
            h, _ = diffsim.rollout(step, jnp.zeros(cfg.gru_hidden), xs)
            return jnp.sum(h**2)

        cases["gru"] = (gru_loss, gru_flat)
    if "ode" in cfg.cases:
        lorenz = lambda t, y, a: jnp.stack(
            [a[0] * (y[1] - y[0]), y[0] * (a[1] - y[2]) - y[1], y[0] * y[1] - a[2] * y[2]]
        )
        dt = 1e-3
        ts = jnp.array([0.0, cfg.ode_steps * dt])

        def ode_loss(a):
            ys = ode.solve(lorenz, jnp.array([1.0, 1.0, 1.0]), ts, a, solver=ode.RK4(), dt=dt)
            return jnp.sum(ys[-1] ** 2)

        cases["ode"] = (ode_loss, jnp.array([10.0, 28.0, 8.0 / 3.0]))
    if "md" in cfg.cases:
        r, box = md.lattice(cfg.md_atoms, 0.8)
        energy = md.lennard_jones(box)
        r = r + 0.05 * jax.random.normal(jax.random.fold_in(key, 4), r.shape, r.dtype)
        cases["md"] = (lambda r: energy(r), r)
    return cases


def cheap_gradient(cfg: Config, key):
    out = {}
    for name, (f, arg) in cheap_gradient_cases(cfg, key).items():
        value = jax.jit(f)
        vg = jax.jit(jax.value_and_grad(f))
        fwd = jax.jit(lambda a, f=f: jax.vjp(f, a))  # value plus the residuals it stores
        y, vjp_fn = fwd(arg)
        bwd = jax.jit(lambda vjp_fn, g: vjp_fn(g))
        t_val = median_time(value, arg, repeats=cfg.cheap_repeats)
        t_vg = median_time(vg, arg, repeats=cfg.cheap_repeats)
        t_fwd = median_time(fwd, arg, repeats=cfg.cheap_repeats)
        t_bwd = median_time(bwd, vjp_fn, jnp.ones_like(y), repeats=cfg.cheap_repeats)
        ops_val = op_count(f, arg)
        ops_vg = op_count(jax.value_and_grad(f), arg)
        out[name] = {
            "time_ratio": t_vg / t_val,
            "op_ratio": ops_vg / ops_val,
            "value_s": t_val,
            "value_and_grad_s": t_vg,
            "forward_with_residuals_s": t_fwd,
            "backward_s": t_bwd,
        }
    return out


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    key = jax.random.key(cfg.seed)
    rows = jacobian_costs(cfg, key)
    metrics: dict = {}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    for ax, kind, title in [
        (axes[0], "n_to_1", "f: R^n -> R (gradient)"),
        (axes[1], "1_to_m", "f: R -> R^m (tangent)"),
    ]:
        rs = [r for r in rows if r["kind"] == kind]
        sizes = [r["size"] for r in rs]
        ax.loglog(sizes, [r["fwd_s"] * 1e3 for r in rs], "o-", label="jacfwd (forward)")
        ax.loglog(sizes, [r["rev_s"] * 1e3 for r in rs], "s-", label="jacrev (reverse)")
        ax.set_xlabel("n" if kind == "n_to_1" else "m")
        ax.set_ylabel("wall time (ms)")
        ax.set_title(title)
        ax.legend()
        for r in rs:
            s = r["size"]
            metrics[f"{kind}.{s}.fwd_ms"] = r["fwd_s"] * 1e3
            metrics[f"{kind}.{s}.rev_ms"] = r["rev_s"] * 1e3
            metrics[f"{kind}.{s}.fwd_over_rev_ops"] = r["fwd_ops"] / r["rev_ops"]
            metrics[f"{kind}.{s}.fwd_over_rev_time"] = r["fwd_s"] / r["rev_s"]
            run.log(
                f"{kind} size {s}: jacfwd {r['fwd_s'] * 1e3:.3g} ms, jacrev "
                f"{r['rev_s'] * 1e3:.3g} ms; ops fwd/rev {r['fwd_ops'] / r['rev_ops']:.3g}"
            )

    cheap = cheap_gradient(cfg, key)
    names = list(cheap)
    xs = np.arange(len(names))
    for name, c in cheap.items():
        for k, v in c.items():
            metrics[f"cheap.{name}.{k}"] = v
        run.log(
            f"{name}: time(value+grad)/time(value) {c['time_ratio']:.2f}, op ratio "
            f"{c['op_ratio']:.2f}; value {c['value_s'] * 1e3:.3g} ms, forward with residuals "
            f"{c['forward_with_residuals_s'] * 1e3:.3g} ms, backward {c['backward_s'] * 1e3:.3g} ms"
        )
    ax = axes[2]
    ax.bar(xs - 0.2, [cheap[n]["time_ratio"] for n in names], 0.4, label="wall time ratio")
    ax.bar(xs + 0.2, [cheap[n]["op_ratio"] for n in names], 0.4, label="operation ratio (XLA)")
    ax.axhline(5.0, color="k", ls="--", label="Griewank's bound ~5")
    ax.set_xticks(xs, names)
    ax.set_yscale("log")
    ax.set_ylabel("cost(value and gradient) / cost(value)")
    ax.set_title("cheap-gradient ratio")
    ax.legend()
    run.save_figure(fig, "ad_modes_cost.png")

    fig, ax = plt.subplots(figsize=(6.5, 4))
    val = [cheap[n]["value_s"] * 1e3 for n in names]
    fw = [cheap[n]["forward_with_residuals_s"] * 1e3 for n in names]
    bw = [cheap[n]["backward_s"] * 1e3 for n in names]
    ax.bar(xs - 0.25, val, 0.25, label="value only")
    ax.bar(xs, fw, 0.25, label="forward storing residuals")
    ax.bar(xs + 0.25, bw, 0.25, label="backward pass")
    ax.set_xticks(xs, names)
    ax.set_yscale("log")
    ax.set_ylabel("wall time (ms)")
    ax.set_title("where the gradient's time goes")
    ax.legend()
    run.save_figure(fig, "gradient_time_split.png")
    return metrics
