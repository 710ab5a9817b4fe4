"""Peak working memory and time of a rollout's gradient, for every gradient strategy.

Memory is XLA's compiled memory analysis (temp buffers) of `jax.grad` through a rollout
of T steps of a 64-unit tanh RNN (float64), for T = 1e2 ... 1e5. Time is the median of
repeated calls after compilation, as a ratio to the forward rollout.

    python benchmarks/bench_rollout.py [--quick] [--plot FILE.png]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
from _timing import machine_load, timed

import diffsim as ds

jax.config.update("jax_enable_x64", True)

H = 64


def _problem(T):
    key = jax.random.key(0)
    W = 0.9 * jax.random.normal(key, (H, H)) / jnp.sqrt(H)
    xs = 0.1 * jax.random.normal(jax.random.fold_in(key, 1), (T, H))
    return W, xs


def _leapfrog(W):
    """Leapfrog for q'' = -(K q + x) with the stiffness K = W W^T + I (symmetric positive
    definite: a stable oscillator). With K = W itself (not symmetric, eigenvalues of
    either sign) the motion grows exponentially, and the reversible gradient, which
    recomputes the states backwards, was 1e61 off BPTT's at T = 1e4."""
    dt = 0.01
    W = W @ W.T + jnp.eye(W.shape[0], dtype=W.dtype)

    def step(s, x):
        q, p = s
        p = p - 0.5 * dt * (W @ q + x)
        q = q + dt * p
        p = p - 0.5 * dt * (W @ q + x)
        return (q, p), None

    def inverse(s, x):
        q, p = s
        p = p + 0.5 * dt * (W @ q + x)
        q = q - dt * p
        p = p + 0.5 * dt * (W @ q + x)
        return (q, p)

    return step, inverse


def reference_loss(strategy_name):
    """The same loss through a plain `lax.scan` (BPTT by `jax.grad`): the anchor."""

    def loss(W, xs):
        h0 = jnp.ones(H)
        if strategy_name == "reversible":
            step, _ = _leapfrog(W)
            (q, p), _ = jax.lax.scan(step, (h0, h0), xs)
            return jnp.sum(q**2)
        step = lambda h, x: (h + 0.1 * jnp.tanh(W @ h + x), None)
        h, _ = jax.lax.scan(step, h0, xs)
        return jnp.sum(h**2)

    return loss


def loss_fn(strategy_name):
    def loss(W, xs):
        h0 = jnp.ones(H)
        if strategy_name == "reversible":
            step, inverse = _leapfrog(W)
            (q, p), _ = ds.rollout(step, (h0, h0), xs, grad=ds.Reversible(inverse))
            return jnp.sum(q**2)
        grad = {
            "bptt": ds.BPTT(),
            "checkpointed": ds.Checkpointed(),
            "checkpointed-3": ds.Checkpointed(levels=3),
            "discrete-adjoint": ds.DiscreteAdjoint(),
        }[strategy_name]
        step = lambda h, x: (h + 0.1 * jnp.tanh(W @ h + x), None)
        h, _ = ds.rollout(step, h0, xs, grad=grad)
        return jnp.sum(h**2)

    return loss


STRATEGIES = ["bptt", "checkpointed", "checkpointed-3", "discrete-adjoint", "reversible"]


def _time(fn, *args, repeats=5):
    return timed(fn, *args, repeats=repeats).median


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T up to 1e4 only")
    parser.add_argument("--plot", help="write the memory curves to this PNG")
    args = parser.parse_args(argv)
    Ts = [100, 1_000, 10_000] if args.quick else [100, 1_000, 10_000, 100_000]
    rows = []
    print(f"float64, {machine_load()}; every gradient checked against BPTT (rel. 1e-8)")
    print(f"{'strategy':<18}{'T':>8}{'memory (KB)':>14}{'grad time (ms)':>16}{'x forward':>11}")
    for name in STRATEGIES:
        loss = loss_fn(name)
        grad = jax.jit(jax.grad(loss))
        fwd = jax.jit(loss)
        ref_grad = jax.jit(jax.grad(reference_loss(name)))
        for T in Ts:
            W, xs = _problem(T)
            # The gradient equals BPTT through a plain scan before anything is measured
            # (the reversible leapfrog recomputes its states backwards: round-off only).
            g, g_ref = grad(W, xs), ref_grad(W, xs)
            err = float(jnp.max(jnp.abs(g - g_ref)) / jnp.max(jnp.abs(g_ref)))
            assert err < 1e-8, f"{name}, T = {T}: gradient differs from BPTT by {err:.1e}"
            mem = ds.memory_usage(jax.grad(loss), W, xs).temp
            t_grad = _time(grad, W, xs, repeats=3 if T >= 100_000 else 5)
            t_fwd = _time(fwd, W, xs, repeats=3 if T >= 100_000 else 5)
            rows.append((name, T, mem, t_grad, t_fwd))
            print(
                f"{name:<18}{T:>8}{mem / 1e3:>14.1f}{t_grad * 1e3:>16.2f}{t_grad / t_fwd:>11.2f}",
                flush=True,
            )
    print(machine_load())
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for name in STRATEGIES:
            pts = [(T, m) for n, T, m, _, _ in rows if n == name]
            ax.loglog(*zip(*pts), "o-", label=name)
        ax.set_xlabel("steps T")
        ax.set_ylabel("peak working memory of the gradient (bytes)")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
        fig.savefig(args.plot, dpi=110, bbox_inches="tight")
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
