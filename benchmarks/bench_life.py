"""Game of Life on a periodic grid: numpy, scipy and diffsim (roll-sum and bit-packed).

Runs B3/S23 for `--steps` generations on an N x N periodic grid (default 1024, 100 steps)
side by side in one process: numpy at its best (the separable neighbour sum: two rolls
along each axis, uint8; ratios are to it), numpy's textbook eight-roll sum, scipy
(`signal.convolve2d`, boundary="wrap"), diffsim `RollSum()` (the same roll-sum, jit +
scan) and diffsim `BitPacked()` (32 cells per uint32 word, bitwise adders, jit + scan).
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
    """The best plain numpy: the 3 x 3 box sum is separable, so four rolls (two along
    each axis) instead of eight, and the centre subtracted."""
    g = grid.copy()
    for _ in range(steps):
        rows = g + np.roll(g, 1, 0) + np.roll(g, -1, 0)
        n = rows + np.roll(rows, 1, 1) + np.roll(rows, -1, 1) - g
        g = ((n == 3) | ((g == 1) & (n == 2))).astype(np.uint8)
    return g


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
    rows = []
    t_np, ref = timed(lambda: numpy_life(grid, steps), a.repeats)
    rows.append(("numpy separable roll sum (uint8)", t_np, 0.0))
    t_np8, out = timed(lambda: numpy_life_eight_rolls(grid, steps), a.repeats)
    assert np.array_equal(out, ref), "the two numpy versions disagree"
    rows.append(("numpy eight np.roll sum (uint8)", t_np8, 0.0))
    sp_repeats = 1 if n * n * steps > 2**24 else a.repeats
    t_sp, out = timed(lambda: scipy_life(grid, steps), sp_repeats)
    assert np.array_equal(out, ref), "scipy disagrees with numpy"  # checked before any ratio
    rows.append(("scipy convolve2d wrap", t_sp, 0.0))

    g = jnp.asarray(grid)
    for name, method in [
        ("diffsim RollSum (jit+scan)", RollSum()),
        ("diffsim BitPacked uint32 (jit+scan)", BitPacked()),
    ]:
        t0 = time.perf_counter()
        out = run_life(LIFE, g, steps, method=method, frames=False).block_until_ready()
        compile_s = time.perf_counter() - t0
        # The same final grid as numpy's, bit for bit, before anything is timed.
        assert np.array_equal(np.asarray(out), ref), f"{name} disagrees with numpy"
        t, out = timed(
            lambda m=method: run_life(LIFE, g, steps, method=m, frames=False).block_until_ready(),
            a.repeats,
        )
        rows.append((name, t, compile_s))

    print(
        f"{'method':40s} {'time (ms)':>10s} {'cells/s':>10s} {'vs numpy':>9s} "
        f"{'first call (s)':>15s}"
    )
    for name, t, c in rows:
        print(
            f"{name:40s} {1e3 * t:10.2f} {updates / t:10.3g} {t_np / t:9.2f}x "
            f"{c if c else float('nan'):15.2f}"
        )
    t_bp = rows[-1][1]
    moved = 2 * n * n / 8  # read and write the packed grid once per step
    bw = copy_bandwidth()
    print(
        f"\nBitPacked: {moved / 1e3:.0f} kB moved per step, {1e6 * t_bp / steps:.1f} us per "
        f"step -> {moved * steps / t_bp / 1e9:.2f} GB/s; numpy copy of 256 MiB: "
        f"{bw / 1e9:.2f} GB/s (read + write); ratio {moved * steps / t_bp / bw:.3f}"
    )
    print("(the packed grid fits in cache at this size, so the bound is compute, not DRAM)")
    print(machine_load())


if __name__ == "__main__":
    main()
