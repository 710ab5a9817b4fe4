"""Game of Life on a periodic grid: numpy, scipy and diffsim (roll-sum and bit-packed).

Runs B3/S23 for `--steps` generations on an N x N periodic grid (default 1024, 100 steps)
side by side in one process: numpy's separable neighbour sum (two rolls along each axis,
uint8) and the same sum with preallocated buffers and `out=` (ratios are to the faster of
the two, timed in alternation with the bit-packed runs), numpy's textbook eight-roll sum,
scipy (`signal.convolve2d`, boundary="wrap"), diffsim `RollSum()` (the roll-sum, jit +
scan) and diffsim `BitPacked()` (32 cells per uint32 word, bitwise adders, jit + scan; 8
and 1 generations per loop iteration).
States are exact integers (no floating point). Every method's final grid is checked
equal to numpy's. Prints the median time over repeats (compile time separately), cell
updates per second, the ratio to numpy, and for the bit-packed step the bytes it must
move per step (read and write the packed grid) over its time, next to a measured memory
copy bandwidth.

    .venv/bin/python benchmarks/bench_life.py [--quick] [--n 1024] [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import _timing
import jax
import jax.numpy as jnp
import numpy as np
from _timing import machine_load
from scipy import signal

from diffsim.automata import LIFE, BitPacked, RollSum, run_life


def numpy_life(grid, steps):
    """Numpy with the separable neighbour sum: the 3 x 3 box sum is separable, so four
    rolls (two along each axis) instead of eight, and the centre subtracted."""
    g = grid.copy()
    for _ in range(steps):
        rows = g + np.roll(g, 1, 0) + np.roll(g, -1, 0)
        n = rows + np.roll(rows, 1, 1) + np.roll(rows, -1, 1) - g
        g = ((n == 3) | ((g == 1) & (n == 2))).astype(np.uint8)
    return g


def numpy_life_buffers(grid, steps):
    """The same separable sum without allocation: a grid with a one-row halo and a row-sum
    buffer with a one-column halo, refreshed in place; every sum written with `out=`
    (uint8), and the rule as `(n | cell) == 3` written straight into the grid."""
    h, w = grid.shape
    g = np.zeros((h + 2, w), np.uint8)
    g[1:-1] = grid
    r = np.empty((h, w + 2), np.uint8)
    n = np.empty((h, w), np.uint8)
    mid, cell = r[:, 1:-1], g[1:-1]
    for _ in range(steps):
        g[0], g[-1] = g[h], g[1]
        np.add(g[:-2], g[1:-1], out=mid)
        np.add(mid, g[2:], out=mid)
        r[:, 0], r[:, -1] = r[:, w], r[:, 1]
        np.add(r[:, :-2], r[:, 2:], out=n)
        np.add(n, mid, out=n)
        np.subtract(n, cell, out=n)
        np.bitwise_or(n, cell, out=n)
        np.equal(n, 3, out=cell.view(bool))
    return cell.copy()


def numpy_life_eight_rolls(grid, steps):
    """The textbook numpy version (eight rolled copies summed), for comparison."""
    g = grid.copy()
    for _ in range(steps):
        n = sum(
            np.roll(np.roll(g, dy, 0), dx, 1)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if (dy, dx) != (0, 0)
        )
        g = ((n == 3) | ((g == 1) & (n == 2))).astype(np.uint8)
    return g


KERNEL = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], np.uint8)


def scipy_life(grid, steps):
    g = grid.copy()
    for _ in range(steps):
        n = signal.convolve2d(g, KERNEL, mode="same", boundary="wrap")
        g = ((n == 3) | ((g == 1) & (n == 2))).astype(np.uint8)
    return g


def timed(fn, repeats):
    """(median s, output) of `fn()`, through the shared timing helper."""
    t = _timing.timed(fn, repeats=repeats)
    return t.median, t.out


def copy_bandwidth(nbytes=256 * 2**20, repeats=5):
    """Bytes per second of a large numpy copy (read + write counted)."""
    a = np.ones(nbytes // 8)
    b = np.empty_like(a)
    t, _ = timed(lambda: np.copyto(b, a), repeats)
    return 2 * nbytes / t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="256 x 256, 20 steps, 3 repeats")
    a = p.parse_args()
    if a.quick:
        a.n, a.steps, a.repeats = 256, 20, 3
    n, steps = a.n, a.steps
    grid = (np.random.default_rng(0).random((n, n)) < 0.35).astype(np.uint8)
    updates = n * n * steps
    print(
        f"Game of Life, {n} x {n} periodic, {steps} steps, {a.repeats} repeats (median); "
        f"exact integer states; jax {jax.__version__} on {jax.devices()[0].platform}"
    )

    print(machine_load())
    ref = numpy_life(grid, steps)
    slow = {
        "numpy eight np.roll sum (uint8)": numpy_life_eight_rolls,
        "scipy convolve2d wrap": scipy_life,
    }
    assert np.array_equal(numpy_life_buffers(grid, steps), ref), "the numpy versions disagree"
    g = jnp.asarray(grid)
    methods = {
        "diffsim RollSum (jit+scan)": RollSum(),
        "diffsim BitPacked(unroll=1)": BitPacked(unroll=1),
        "diffsim BitPacked() (unroll=8)": BitPacked(),
    }
    runs, first = {}, {}
    for name, method in methods.items():
        fn = jax.jit(lambda g, m=method: run_life(LIFE, g, steps, method=m, frames=False))
        t0 = time.perf_counter()
        out = fn(g).block_until_ready()
        first[name] = time.perf_counter() - t0
        # The same final grid as numpy's, bit for bit, before anything is timed.
        assert np.array_equal(np.asarray(out), ref), f"{name} disagrees with numpy"
        runs[name] = fn

    # The fast ones in alternation, so that their ratios hold while the load changes.
    fast = {
        "numpy separable roll sum (uint8)": (numpy_life, (grid, steps)),
        "numpy separable sum, out= buffers": (numpy_life_buffers, (grid, steps)),
        **{name: (runs[name], (g,)) for name in list(methods)[1:]},
    }
    times = {k: v.median for k, v in _timing.interleaved(fast, repeats=a.repeats).items()}
    for name, fn in slow.items():
        reps = 1 if n * n * steps > 2**24 and "scipy" in name else a.repeats
        t, out = timed(lambda f=fn: f(grid, steps), reps)
        assert np.array_equal(out, ref), f"{name} disagrees with numpy"  # before any ratio
        times[name] = t
    name = "diffsim RollSum (jit+scan)"
    times[name], _ = timed(lambda: runs[name](g).block_until_ready(), a.repeats)

    anchor = min(
        ("numpy separable roll sum (uint8)", "numpy separable sum, out= buffers"), key=times.get
    )
    t_np = times[anchor]
    print(f"anchor (numpy at its best here): {anchor}")
    print(
        f"{'method':40s} {'time (ms)':>10s} {'cells/s':>10s} {'vs numpy':>9s} "
        f"{'first call (s)':>15s}"
    )
    for name, t in times.items():
        c = first.get(name, float("nan"))
        print(f"{name:40s} {1e3 * t:10.2f} {updates / t:10.3g} {t_np / t:9.2f}x {c:15.2f}")
    t_bp = times["diffsim BitPacked() (unroll=8)"]
    moved = 2 * n * n / 8  # read and write the packed grid once per step
    bw = copy_bandwidth()
    step = jax.jit(lambda s: BitPacked().step(LIFE, s))
    cost = step.lower(BitPacked().encode(g)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    print(
        f"\nBitPacked: {moved / 1e3:.0f} kB must move per step (XLA's cost analysis of one "
        f"compiled step: {cost.get('bytes accessed', float('nan')) / 1e3:.0f} kB accessed), "
        f"{1e6 * t_bp / steps:.1f} us per step -> {moved * steps / t_bp / 1e9:.2f} GB/s; numpy "
        f"copy of 256 MiB: {bw / 1e9:.2f} GB/s (read + write); "
        f"ratio {moved * steps / t_bp / bw:.3f}"
    )
    print("(the packed grid fits in cache at this size, so the bound is compute, not DRAM)")
    print(machine_load())


if __name__ == "__main__":
    main()
