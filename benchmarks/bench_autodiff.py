"""Transposed convolution built as a VJP against `jax.lax.conv_transpose`, and the tape
AD against `jax.grad`.

1. `diffsim.autodiff.conv_transpose` (the VJP of `conv`) vs `lax.conv_transpose(...,
   transpose_kernel=True)`, both jitted, 2-D stride 2 SAME and VALID, float32: outputs
   agree to 1e-5 relative before timing; prints the time ratio.
2. `diffsim.autodiff.grad` (numpy tape, interpreted) vs `jax.jit(jax.grad)` on a tanh MLP
   loss (float64): gradients agree to 1e-12 relative; prints the ratio (the tape is a
   teaching tool: expect it to be far slower).

    python benchmarks/bench_autodiff.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import interleaved, machine_load  # noqa: E402

import diffsim.autodiff as ad  # noqa: E402

jax.config.update("jax_enable_x64", True)


def bench_conv(quick):
    batch, ch, n = (4, 16, 16) if quick else (32, 64, 32)
    key = jax.random.key(0)
    print(
        f"transposed convolution, batch {batch}, {ch} -> {ch} channels, {n}x{n} -> {2 * n}x{2 * n}"
    )
    for padding in ("SAME", "VALID"):
        w = jax.random.normal(key, (ch, ch, 3, 3), jnp.float32)
        y = jax.random.normal(jax.random.fold_in(key, 1), (batch, ch, n, n), jnp.float32)
        ours = jax.jit(lambda y, w, p=padding: ad.conv_transpose(y, w, 2, p))
        lax_t = jax.jit(
            lambda y, w, p=padding: jax.lax.conv_transpose(
                y, w, (2, 2), p, dimension_numbers=("NCHW", "OIHW", "NCHW"), transpose_kernel=True
            )
        )
        a, b = ours(y, w), lax_t(y, w)
        err = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
        assert err < 1e-5, err
        t = interleaved({"vjp": (ours, (y, w)), "lax": (lax_t, (y, w))}, repeats=5 if quick else 15)
        print(
            f"  {padding}: VJP-built {t['vjp'].median * 1e3:.3f} ms, lax.conv_transpose "
            f"{t['lax'].median * 1e3:.3f} ms, ratio {t['vjp'].median / t['lax'].median:.2f} "
            f"(max rel diff {err:.1e})"
        )


def bench_tape(quick):
    width, depth = (16, 3) if quick else (64, 6)
    rng = np.random.default_rng(0)
    Ws = [rng.normal(size=(width, width)) / np.sqrt(width) for _ in range(depth)]
    x = rng.normal(size=width)

    def loss(x, lib):
        h = x
        for W in Ws:
            h = lib.tanh(W @ h)
        return lib.sum(h * h)

    class J:
        tanh, sum = jnp.tanh, jnp.sum

    tape = ad.grad(lambda x: loss(x, ad))
    jg = jax.jit(jax.grad(lambda x: loss(x, J)))
    a, b = tape(x), np.asarray(jg(x))
    err = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
    assert err < 1e-12, err
    t = interleaved({"tape": (tape, (x,)), "jax": (jg, (x,))}, repeats=5 if quick else 15)
    print(f"tape AD vs jax.jit(jax.grad), {depth}-layer tanh MLP width {width}:")
    print(
        f"  tape {t['tape'].median * 1e3:.3f} ms, jax {t['jax'].median * 1e3:.3f} ms, ratio "
        f"{t['tape'].median / t['jax'].median:.1f} (max rel diff {err:.1e})"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small version")
    args = parser.parse_args()
    print(machine_load())
    bench_conv(args.quick)
    bench_tape(args.quick)
    print(machine_load())


if __name__ == "__main__":
    main()
