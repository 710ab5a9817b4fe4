"""diffsim.sequence's recurrent layers against a plain `lax.scan` over equinox's cells.

    .venv/bin/python benchmarks/bench_sequence.py [--quick]

Training throughput (nucleotides per second: forward + backward of a per-position
cross-entropy over a batch of one-hot DNA windows) for the vanilla RNN, GRU and LSTM,
float32 on the default device. diffsim runs each cell through `diffsim.rollout` with
`BPTT()` and with `Checkpointed()` (O(sqrt T) memory); the anchor is the same equations
written as the user would: `jax.lax.scan` over `equinox.nn.GRUCell` / `LSTMCell` (a tanh
cell for the RNN), vmapped over the batch, jitted. Weights are copied across, and the
gradients are checked to agree (relative 1e-4) before timing.
"""

from __future__ import annotations

import argparse
import os
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import diffsim
from diffsim import sequence as sq

sys.path.insert(0, os.path.dirname(__file__))
from _timing import interleaved, machine_load  # noqa: E402


def anchor_cell(kind, cell):
    """The equinox (or plain) cell with the same weights, as `h = f(x, h)`."""
    if kind == "gru":
        ref = eqx.nn.GRUCell(cell.input_size, cell.hidden_size, key=jax.random.key(0))
        ref = eqx.tree_at(
            lambda c: (c.weight_ih, c.weight_hh, c.bias, c.bias_n),
            ref,
            (cell.weight_ih, cell.weight_hh, cell.bias, cell.bias_n),
        )
        return ref, jnp.zeros(cell.hidden_size)
    if kind == "lstm":
        ref = eqx.nn.LSTMCell(cell.input_size, cell.hidden_size, key=jax.random.key(0))
        ref = eqx.tree_at(
            lambda c: (c.weight_ih, c.weight_hh, c.bias),
            ref,
            (cell.weight_ih, cell.weight_hh, cell.bias),
        )
        return ref, (jnp.zeros(cell.hidden_size), jnp.zeros(cell.hidden_size))
    return TanhCell(cell.weight_ih, cell.weight_hh, cell.bias), jnp.zeros(cell.hidden_size)


class TanhCell(eqx.Module):
    """The Elman cell as a user would write it: a module, so its weights get gradients.

    (The anchor was a lambda closing over the weights before: `filter_value_and_grad`
    then differentiated nothing, and the anchor ran the forward pass only.)
    """

    weight_ih: jax.Array
    weight_hh: jax.Array
    bias: jax.Array

    def __call__(self, x, h):
        return jnp.tanh(self.weight_ih @ x + self.weight_hh @ h + self.bias)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    B, T, H = (8, 200, 32) if args.quick else (32, 2000, 64)
    key = jax.random.key(0)
    xs = jax.nn.one_hot(jax.random.randint(key, (B, T), 0, 4), 4, dtype=jnp.float32)
    labels = jax.random.randint(jax.random.fold_in(key, 1), (B, T), 0, 3)
    head = jax.random.normal(jax.random.fold_in(key, 2), (3, H), jnp.float32) / np.sqrt(H)
    print(f"# diffsim.sequence vs lax.scan + equinox cells: B={B}, T={T}, hidden {H}, float32")
    print(f"# {machine_load()}")
    print("| cell | diffsim BPTT nt/s | diffsim Checkpointed nt/s | anchor nt/s | BPTT / anchor |")
    print("| --- | --- | --- | --- | --- |")
    for kind in ["rnn", "gru", "lstm"]:
        cell = sq.make_cell(kind, 4, H, key=jax.random.fold_in(key, 3))
        ref, h0 = anchor_cell(kind, cell)

        def ours(cell, grad):
            def loss(cell):
                hs = jax.vmap(sq.Recurrent(cell, grad))(xs)
                return sq.cross_entropy(hs @ head.T, labels)

            return eqx.filter_jit(eqx.filter_value_and_grad(loss))

        def theirs(ref, h0=h0):
            def loss(ref):
                def one(x):
                    def step(h, x):
                        h = ref(x, h)
                        return h, (h[0] if isinstance(h, tuple) else h)

                    return jax.lax.scan(step, h0, x)[1]

                hs = jax.vmap(one)(xs)
                return sq.cross_entropy(hs @ head.T, labels)

            return eqx.filter_jit(eqx.filter_value_and_grad(loss))

        f_b, f_c, f_a = ours(cell, diffsim.BPTT()), ours(cell, diffsim.Checkpointed()), theirs(ref)
        lb, gb = f_b(cell)
        lc, gc = f_c(cell)
        la, ga = f_a(ref)
        np.testing.assert_allclose(lb, la, rtol=1e-5)
        np.testing.assert_allclose(lc, lb, rtol=1e-5)
        for a, b in zip(jax.tree.leaves(gb), jax.tree.leaves(gc)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        for name in ["weight_ih", "weight_hh", "bias"]:
            np.testing.assert_allclose(
                getattr(gb, name), getattr(ga, name), rtol=1e-4, atol=1e-6, err_msg=name
            )
        t = interleaved(
            {"bptt": (f_b, (cell,)), "ckpt": (f_c, (cell,)), "anchor": (f_a, (ref,))},
            repeats=15 if args.quick else 5,
        )
        nt = B * T
        print(
            f"| {kind} | {nt / t['bptt'].median:,.0f} | {nt / t['ckpt'].median:,.0f} | "
            f"{nt / t['anchor'].median:,.0f} | {t['anchor'].median / t['bptt'].median:.2f} |"
        )
    print(f"# {machine_load()}")


if __name__ == "__main__":
    main()
