"""Credit assignment: the cost of one weight update by each rule against `jax.grad`.

One batch through an MLP of MNIST size (784-128-128-10, batch 64, float32; random
inputs, one-hot targets), side by side in one process: backprop by `jax.grad` of the
squared-error loss (the anchor, jitted), the Backprop rule written as local updates, the
exact predictive-coding variants (fixed prediction and zero divergence, L - 1 = 2
inference iterations), plain predictive coding with 20 and 100 inference iterations
(rate 0.1), feedback alignment and direct feedback alignment. The exact variants and the
Backprop rule are checked equal to `jax.grad` (relative error < 1e-5 in float32) before
timing; the approximate rules' cosine similarity to it is printed. Prints the median time
per update (compile time apart) and the ratio to `jax.grad`.

    .venv/bin/python benchmarks/bench_neuro.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

from diffsim import neuro

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved, machine_load  # noqa: E402


def main(quick: bool = False):
    sizes = [196, 64, 64, 10] if quick else [784, 128, 128, 10]
    batch = 32 if quick else 64
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    net = neuro.MLP(sizes, key=k1, dtype=jnp.float32)
    x = jax.random.uniform(k2, (batch, sizes[0]), jnp.float32)
    y = jax.nn.one_hot(jnp.arange(batch) % 10, 10, dtype=jnp.float32)

    anchor = eqx.filter_jit(jax.grad(neuro.mse_loss))
    rules = {
        "backprop rule (local form)": neuro.Backprop(),
        "PC fixed prediction (exact)": neuro.FixedPredictionPC(),
        "PC zero divergence (exact)": neuro.ZeroDivergencePC(),
        "PC 20 iterations": neuro.PredictiveCoding(0.1, neuro.FixedIterations(20)),
        "PC 100 iterations": neuro.PredictiveCoding(0.1, neuro.FixedIterations(100)),
        "feedback alignment": neuro.FeedbackAlignment(net, key=k3),
        "direct feedback alignment": neuro.DirectFeedbackAlignment(net, key=k3),
    }
    exact = {
        "backprop rule (local form)",
        "PC fixed prediction (exact)",
        "PC zero divergence (exact)",
    }
    ref = jax.grad(neuro.mse_loss)(net, x, y)
    calls = {"jax.grad (anchor)": (anchor, (net, x, y))}
    for name, rule in rules.items():
        g = neuro.rule_gradients(rule, net, x, y)
        if name in exact:
            err = float(neuro.relative_error(g, ref))
            assert err < 1e-5, f"{name} differs from jax.grad: relative error {err:.2e}"
        fn = eqx.filter_jit(lambda n, a, b, rule=rule: neuro.rule_gradients(rule, n, a, b))
        calls[name] = (fn, (net, x, y))
    times = interleaved(calls, repeats=5 if quick else 15)
    print(f"MLP {sizes}, batch {batch}, float32; {machine_load()}")
    print(f"{'rule':32s} {'median ms':>10s} {'vs grad':>8s} {'compile s':>10s} {'cosine':>8s}")
    base = times["jax.grad (anchor)"].median
    for name, t in times.items():
        cos = float(neuro.cosine_similarity(t.out, ref))
        print(
            f"{name:32s} {1e3 * t.median:10.3f} {t.median / base:8.2f} {t.first:10.2f} {cos:8.4f}"
        )
    return times


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small version")
    main(parser.parse_args().quick)
