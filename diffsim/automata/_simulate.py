"""Steps and rollouts of elementary (1D) and life-like (2D) automata.

Each simulator is a step run by `diffsim.rollout`. Life-like rules have two steps that
give identical results: `RollSum()` (neighbour count by eight rolls, then a table
lookup; works on any dtype and batch) and `BitPacked()` (32 cells per uint32 word,
neighbour counts by bitwise adders; needs the width to be a multiple of 32).
"""

# ruff: noqa: F722  (jaxtyping shape strings are not forward references)

import abc
import functools

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._checks import concrete
from .._custom_types import Array, ArrayLike, Int, Shaped
from .._rollout import rollout
from ._rules import ElementaryRule, LifeLikeRule

_U = np.uint32


# --- boundaries (1D) ---------------------------------------------------------------


class AbstractBoundary(eqx.Module):
    """How a 1D automaton sees past its ends: gives the padded row `(..., W + 2)`."""

    @abc.abstractmethod
    def pad(self, cells: Array) -> Array:
        """Gives `cells` with one cell added on each side."""


class Periodic(AbstractBoundary):
    """The row wraps around: the left end's left neighbour is the right end."""

    def pad(self, cells):
        return jnp.concatenate([cells[..., -1:], cells, cells[..., :1]], axis=-1)


class Fixed(AbstractBoundary):
    """Cells past the ends are held at `value` (0 or 1) forever.

    **Raises:** `ValueError` if `value` is not 0 or 1.
    """

    value: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        if self.value not in (0, 1):
            raise ValueError(f"Fixed: value must be 0 or 1, got {self.value!r}")

    def pad(self, cells):
        edge = jnp.full((*cells.shape[:-1], 1), self.value, cells.dtype)
        return jnp.concatenate([edge, cells, edge], axis=-1)


def _elementary_table(rule) -> Array:
    if isinstance(rule, ElementaryRule):
        return rule.table
    if isinstance(rule, int) and not isinstance(rule, bool):
        return ElementaryRule(rule).table
    table = jnp.asarray(rule)
    if table.shape != (8,):
        raise ValueError(
            f"rule must be an ElementaryRule, an int 0..255 or a table of shape (8,), "
            f"got shape {table.shape}"
        )
    return table


def elementary_step(
    rule: ElementaryRule | int | Shaped[ArrayLike, " 8"],
    cells: Shaped[ArrayLike, "*batch width"],
    *,
    boundary: AbstractBoundary = Periodic(),
) -> Shaped[Array, "*batch width"]:
    """Gives the next row of an elementary automaton.

    **Arguments:**

    - `rule`: an `ElementaryRule`, its number, or its table (shape (8,), indexed
      `4 l + 2 c + r`; a traced table lets `vmap` run many rules at once).
    - `cells`: 0/1 states, shape `(..., W)`.
    - `boundary`: `Periodic()` or `Fixed(value)`.

    **Returns:** the next states, same shape and dtype as `cells`.

    **Example:** `elementary_step(90, jnp.array([0, 0, 1, 0, 0]))` is `[0, 1, 0, 1, 0]`.
    """
    table = _elementary_table(rule)
    cells = jnp.asarray(cells)
    _check_binary(cells, "elementary_step: cells")
    if cells.ndim < 1 or cells.shape[-1] < 1:
        raise ValueError(f"cells must have shape (..., W) with W >= 1, got {cells.shape}")
    return _elementary_step(table, cells, boundary)


@eqx.filter_jit
def _elementary_step(table, cells, boundary):
    p = boundary.pad(cells.astype(jnp.int32))
    idx = 4 * p[..., :-2] + 2 * p[..., 1:-1] + p[..., 2:]
    return table[idx].astype(cells.dtype)


def run_elementary(
    rule: ElementaryRule | int | Shaped[ArrayLike, " 8"],
    cells: Shaped[ArrayLike, "*batch width"],
    steps: int,
    *,
    boundary: AbstractBoundary = Periodic(),
) -> Shaped[Array, "frames *batch width"]:
    """Gives the space-time diagram of an elementary automaton: rows 0..steps.

    **Arguments:** as `elementary_step`; `steps` >= 0 is the number of updates.

    **Returns:** shape `(steps + 1, ..., W)`; row 0 is `cells`.

    **Raises:** `ValueError` for a bad rule, shape or `steps`.

    **Example:** `run_elementary(30, single_cell(101), 50)` draws rule 30's triangle.
    """
    _check_steps(steps)
    table = _elementary_table(rule)
    cells = jnp.asarray(cells)
    _check_binary(cells, "run_elementary: cells")
    return _run_elementary(table, cells, steps, boundary)


@eqx.filter_jit
def _run_elementary(table, cells, steps, boundary):
    def step(c, _):
        c2 = elementary_step(table, c, boundary=boundary)
        return c2, c2

    _, rows = rollout(step, cells, length=steps)
    if rows is None:
        return cells[None]
    return jnp.concatenate([cells[None], rows])


def single_cell(width: int, *, dtype=jnp.int32) -> Int[Array, " width"]:
    """Gives a row of `width` zeros with a single 1 at index `width // 2`."""
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"single_cell: width must be an int >= 1, got {width!r}")
    return jnp.zeros(width, dtype).at[width // 2].set(1)


# --- life-like rules (2D, periodic) --------------------------------------------------


def _life_table(rule) -> Array:
    if isinstance(rule, LifeLikeRule):
        return rule.table
    if isinstance(rule, str):
        from ._rules import parse_rule

        return parse_rule(rule).table
    table = jnp.asarray(rule)
    if table.shape != (2, 9):
        raise ValueError(
            f"rule must be a LifeLikeRule, a B/S string or a table of shape (2, 9), "
            f"got shape {table.shape}"
        )
    return table


def neighbor_count(grid: Shaped[ArrayLike, "*batch h w"]) -> Shaped[Array, "*batch h w"]:
    """Gives each cell's number of live Moore neighbours on a periodic grid (int32)."""
    g = jnp.asarray(grid).astype(jnp.int32)
    rows = jnp.roll(g, 1, axis=-2) + g + jnp.roll(g, -1, axis=-2)
    block = jnp.roll(rows, 1, axis=-1) + rows + jnp.roll(rows, -1, axis=-1)
    return block - g


def life_step(
    rule: LifeLikeRule | str | Shaped[ArrayLike, "2 9"],
    grid: Shaped[ArrayLike, "*batch h w"],
) -> Shaped[Array, "*batch h w"]:
    """Gives the next generation of a life-like rule on a periodic grid.

    **Arguments:**

    - `rule`: a `LifeLikeRule`, a B/S string, or a table `table[state, n]` of shape (2, 9).
    - `grid`: 0/1 states, shape `(..., H, W)`.

    **Returns:** the next states, same shape and dtype as `grid`.

    **Example:** `life_step("B3/S23", blinker)` is the blinker turned by 90 degrees.
    """
    table = _life_table(rule)
    grid = jnp.asarray(grid)
    _check_binary(grid, "life_step: grid")
    if grid.ndim < 2:
        raise ValueError(f"grid must have shape (..., H, W), got {grid.shape}")
    return _life_step(table, grid)


@eqx.filter_jit
def _life_step(table, grid):
    n = neighbor_count(grid)
    return table[grid.astype(jnp.int32), n].astype(grid.dtype)


class AbstractLifeMethod(eqx.Module):
    """How `run_life` computes a life-like step; every method gives identical grids."""

    @abc.abstractmethod
    def encode(self, grid: Array) -> Array:
        """Gives the internal state for a 0/1 grid."""

    @abc.abstractmethod
    def decode(self, state: Array, like: Array) -> Array:
        """Gives the 0/1 grid (dtype of `like`) for an internal state."""

    @abc.abstractmethod
    def step(self, rule: LifeLikeRule, state: Array) -> Array:
        """Gives the next internal state."""

    def check(self, grid: Array) -> None:
        """Raises `ValueError` if this method cannot run on `grid`'s shape."""

    @property
    def steps_per_iteration(self) -> int:
        """Generations computed per iteration of `run_life`'s loop (1 unless overridden)."""
        return 1


class RollSum(AbstractLifeMethod):
    """Neighbour counts by rolls (a 3x3 periodic convolution), then a table lookup."""

    def encode(self, grid):
        return grid

    def decode(self, state, like):
        return state.astype(like.dtype)

    def step(self, rule, state):
        return life_step(rule, state)


class BitPacked(AbstractLifeMethod):
    """32 cells per uint32 word; counts by bitwise full adders (the width must divide by 32).

    The internal words are interleaved: bit `j` of word `k` in a row is column `j K + k`
    (K = W / 32), so a cell's west and east neighbours sit in the same bit of the adjacent
    words (word moves, no shifts; only the halo column is rotated by a bit). A step pads the
    words with a one-word periodic halo, then counts neighbours with about 30 word
    operations per 32 cells and applies the rule as a Boolean circuit (4 more for B3/S23).
    Every step moves `H * W / 8` bytes in and out (plus the halo) instead of `H * W`.

    **Arguments:**

    - `unroll`: generations per iteration of the compiled loop (>= 1); more saves loop
      overhead on the CPU (8: 1.7-3.5x faster than 1 at 1024², 100 steps, measured under
      load) at the cost of compile time.

    **Example:** `run_life(LIFE, grid, 100, method=BitPacked(), frames=False)`.

    **Raises:** `ValueError` for `unroll` < 1; `run_life` raises it for a width
    that is not a positive multiple of 32.
    """

    unroll: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        if isinstance(self.unroll, bool) or not isinstance(self.unroll, int) or self.unroll < 1:
            raise ValueError(f"BitPacked: unroll must be an int >= 1, got {self.unroll!r}")

    @property
    def steps_per_iteration(self):
        return self.unroll

    def check(self, grid):
        if grid.shape[-1] == 0 or grid.shape[-1] % 32:
            raise ValueError(
                f"BitPacked: the grid's width must be a positive multiple of 32, got shape "
                f"{grid.shape}"
            )

    def encode(self, grid):
        w = grid.shape[-1]
        bits = (grid != 0).astype(jnp.uint32).reshape(*grid.shape[:-1], 32, w // 32)
        bits = jnp.swapaxes(bits, -1, -2)  # (..., H, K, 32): bit j of word k
        shifts = jnp.arange(32, dtype=jnp.uint32).reshape((1,) * (bits.ndim - 1) + (32,))
        return jnp.sum(bits << shifts, axis=-1, dtype=jnp.uint32)

    def decode(self, state, like):
        shifts = jnp.arange(32, dtype=jnp.uint32).reshape((1,) * state.ndim + (32,))
        bits = jnp.swapaxes((state[..., None] >> shifts) & _U(1), -1, -2)  # (..., H, 32, K)
        return bits.reshape(*state.shape[:-1], state.shape[-1] * 32).astype(like.dtype)

    def step(self, rule, state):
        return _next_from_padded(rule, _pad_halo(state, interleaved=True), interleaved=True)


def _check_binary(x, name: str):
    """Refuses concrete cell values outside {0, 1}: they would give silently wrong rows."""
    a = concrete(x)
    if a is not None and a.size and not np.all((a == 0) | (a == 1)):
        bad = np.unique(a[(a != 0) & (a != 1)])[:5]
        raise ValueError(f"{name} must hold only 0 and 1, got values {bad.tolist()}")


def _check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")


def run_life(
    rule: LifeLikeRule | str,
    grid: Shaped[ArrayLike, "*batch h w"],
    steps: int,
    *,
    method: AbstractLifeMethod = RollSum(),
    frames: bool = True,
) -> Shaped[Array, "..."]:
    """Gives the evolution of a life-like rule on a periodic grid.

    **Arguments:**

    - `rule`: a `LifeLikeRule` or a B/S string.
    - `grid`: 0/1 states, shape `(..., H, W)`.
    - `steps`: number of generations, >= 0.
    - `method`: `RollSum()` or `BitPacked()` (W a multiple of 32); identical results.
    - `frames`: if True return every generation, else only the last.

    **Returns:** `(steps + 1, ..., H, W)` frames (frame 0 is `grid`) or the final `(..., H, W)`.

    **Raises:** `ValueError` for a malformed rule, a bad shape or `steps`.

    **Example:** `run_life("B3/S23", glider_grid, 4, frames=False)` is the glider moved by (1, 1).
    """
    if isinstance(rule, str):
        from ._rules import parse_rule

        rule = parse_rule(rule)
    if not isinstance(rule, LifeLikeRule):
        raise ValueError(f"run_life: rule must be a LifeLikeRule or a B/S string, got {rule!r}")
    _check_steps(steps)
    grid = jnp.asarray(grid)
    _check_binary(grid, "run_life: grid")
    if grid.ndim < 2:
        raise ValueError(f"run_life: grid must have shape (..., H, W), got {grid.shape}")
    method.check(grid)
    return _run_life(rule, grid, int(steps), method, frames)


@eqx.filter_jit
def _run_life(rule, grid, steps, method, frames):
    k = method.steps_per_iteration

    def chunk(n):
        def step(s, _):
            outs = []
            for _ in range(n):
                s = method.step(rule, s)
                outs.append(method.decode(s, grid) if frames else None)
            return s, (jnp.stack(outs) if frames else None)

        return step

    state = method.encode(grid)
    parts = [grid[None]]
    # `steps // k` iterations of k generations, then the remaining `steps % k` one by one.
    for length, n in ((steps // k, k), (steps % k, 1)):
        if length:
            state, outs = rollout(chunk(n), state, length=length)
            if frames:
                parts.append(outs.reshape(length * n, *grid.shape))
    if not frames:
        return method.decode(state, grid)
    return jnp.concatenate(parts)


# --- bit packing -------------------------------------------------------------------


def pack_bits(grid: Shaped[ArrayLike, "*batch h w"]) -> Array:
    """Gives the grid packed 32 cells per uint32 word: shape `(..., H, W // 32)`.

    Bit `j` of word `k` in a row holds the cell in column `32 k + j`.

    **Raises:** `ValueError` if `W` is not a positive multiple of 32.
    """
    grid = jnp.asarray(grid)
    _check_binary(grid, "pack_bits: grid")
    if grid.ndim < 2 or grid.shape[-1] == 0 or grid.shape[-1] % 32:
        raise ValueError(
            f"pack_bits: grid must have shape (..., H, W) with W a multiple of 32, got {grid.shape}"
        )
    return _pack_bits(grid)


@eqx.filter_jit
def _pack_bits(grid):
    bits = (grid != 0).astype(jnp.uint32).reshape(*grid.shape[:-1], grid.shape[-1] // 32, 32)
    shifts = jnp.arange(32, dtype=jnp.uint32).reshape((1,) * (bits.ndim - 1) + (32,))
    return jnp.sum(bits << shifts, axis=-1, dtype=jnp.uint32)


def unpack_bits(words: Array) -> Shaped[Array, "*batch h w"]:
    """Gives the 0/1 uint8 grid `(..., H, 32 * K)` of packed words `(..., H, K)`."""
    return _unpack_bits(jnp.asarray(words))


@eqx.filter_jit
def _unpack_bits(words):
    shifts = jnp.arange(32, dtype=jnp.uint32).reshape((1,) * words.ndim + (32,))
    bits = (words[..., None] >> shifts) & _U(1)
    return bits.reshape(*words.shape[:-1], words.shape[-1] * 32).astype(jnp.uint8)


def _full_add(a, b, c):
    t = a ^ b
    return t ^ c, (a & b) | (t & c)


def _pad_halo(words: Array, *, interleaved: bool) -> Array:
    """Gives the packed grid `(..., H, K)` with a one-word periodic halo: `(..., H + 2, K + 2)`.

    The halo is built once per step, so the neighbour count reads only slices of it (plain
    offsets, which XLA vectorises) instead of rolls (a concatenate per use, inside the loop).
    In the interleaved layout (bit `j` of word `k` is column `j K + k`) the column halo is the
    far column's word rotated by one bit; in the contiguous layout it is that word itself.
    """
    x = jnp.concatenate([words[..., -1:, :], words, words[..., :1, :]], axis=-2)
    left, right = x[..., -1:], x[..., :1]
    if interleaved:
        left = (left << _U(1)) | (left >> _U(31))
        right = (right >> _U(1)) | (right << _U(31))
    xp = jnp.concatenate([left, x, right], axis=-1)
    # On the CPU a barrier keeps XLA from fusing the halo's concatenates into the counting
    # kernel, where they become a branch per element and stop its vectorisation (1.5x
    # slower, measured); elsewhere XLA's own fusion is left alone (one kernel per step).
    return lax.platform_dependent(xp, cpu=lax.optimization_barrier, default=lambda a: a)


def _next_from_padded(rule: LifeLikeRule, xp: Array, *, interleaved: bool) -> Array:
    """Gives the next generation `(..., H, K)` of the halo-padded packed grid `xp`.

    Neighbour count n (0..8, the cell excluded) by bit-sliced adders: a 3-sum of the row
    above and of the row below, a 2-sum of the west and east neighbours in the cell's row,
    then the three 2-bit sums added into the bits n0, n1, n2, n3 (n3 only for n = 8):
    30 word operations per 32 cells in the interleaved layout, where a horizontal neighbour
    is the adjacent word (18 more for the shifts in the contiguous layout). The rule is
    then a Boolean function of (cell, n) minimised at trace time (4 operations for B3/S23).
    """
    h, k = xp.shape[-2] - 2, xp.shape[-1] - 2

    def at(di, dk):
        return xp[..., di : di + h, dk : dk + k]

    def row(di):  # (west, centre, east) neighbours of the cells in row di - 1 of the output
        w, c, e = at(di, 0), at(di, 1), at(di, 2)
        if interleaved:
            return w, c, e
        return (c << _U(1)) | (w >> _U(31)), c, (c >> _U(1)) | (e << _U(31))

    a0, a1 = _full_add(*row(0))
    c0, c1 = _full_add(*row(2))
    w, x, e = row(1)
    b0, b1 = w ^ e, w & e
    n0, k0 = _full_add(a0, b0, c0)
    p, q = _full_add(a1, b1, c1)
    r = p & k0
    n1, n2, n3 = p ^ k0, q ^ r, q & r
    return _emit(_rule_circuit(rule), {"x": x, "n0": n0, "n1": n1, "n2": n2, "n3": n3})


# --- the rule as a Boolean circuit of (cell, neighbour-count bits) ---------------------

_VARS = ("x", "n0", "n1", "n2", "n3")


def _rule_truth_table(rule: LifeLikeRule) -> tuple:
    """Gives the next state for each assignment of `_VARS` (bit i of the index is var i);
    None where the count bits cannot occur (n3 = 1 only with n = 8)."""
    table = rule.numpy_table()
    out = []
    for idx in range(32):
        x, n = idx & 1, (idx >> 1) & 15
        out.append(None if n > 8 else int(table[x, n]))
    return tuple(out)


def _rule_circuit(rule: LifeLikeRule):
    """Gives an expression (nested tuples) with the fewest operations found by Shannon
    expansion over every variable order, don't-cares merged (B3/S23: `~n2 & n1 & (n0 | x)`)."""
    return _circuit_for(_rule_truth_table(rule))


@functools.lru_cache(maxsize=1024)
def _circuit_for(truth_table: tuple):
    return _best(truth_table, _VARS)[1]


def _cofactors(f, vars_, v):
    """Gives (the other variables, f with v = 0, f with v = 1)."""
    i = vars_.index(v)
    f0 = tuple(val for idx, val in enumerate(f) if not (idx >> i) & 1)
    f1 = tuple(val for idx, val in enumerate(f) if (idx >> i) & 1)
    return vars_[:i] + vars_[i + 1 :], f0, f1


def _merge(f0, f1):
    """Gives the function equal to both where they agree, or None if they conflict."""
    out = []
    for a, b in zip(f0, f1):
        if a is not None and b is not None and a != b:
            return None
        out.append(a if a is not None else b)
    return tuple(out)


def _cost(e) -> int:
    return 0 if isinstance(e, (str, int)) else 1 + sum(_cost(a) for a in e[1:])


@functools.lru_cache(maxsize=1 << 16)  # sub-functions recur across rules
def _best(f, vars_):
    """Gives (operations, expression) of the cheapest circuit found for truth table `f`."""
    if all(v in (0, None) for v in f):
        res = (0, 0)
    elif all(v in (1, None) for v in f):
        res = (0, 1)
    else:
        res = None
        for v in vars_:
            rest, f0, f1 = _cofactors(f, vars_, v)
            m = _merge(f0, f1)
            if m is not None:  # f does not depend on v (given the don't-cares)
                cand = _best(m, rest)
            else:
                e = _mux(v, _best(f0, rest)[1], _best(f1, rest)[1])
                cand = (_cost(e), e)
            if res is None or cand[0] < res[0]:
                res = cand
    assert res is not None  # a non-constant function depends on some variable
    return res


def _mux(v, e0, e1):
    """Gives `v ? e1 : e0` with constants folded."""
    if e0 == 0 and e1 == 1:
        return v
    if e0 == 1 and e1 == 0:
        return ("not", v)
    if e0 == 0:
        return ("and", v, e1)
    if e1 == 0:
        return ("and", ("not", v), e0)
    if e0 == 1:
        return ("or", ("not", v), e1)
    if e1 == 1:
        return ("or", v, e0)
    return ("xor", e0, ("and", v, ("xor", e0, e1)))


def _emit(e, env):
    if isinstance(e, str):
        return env[e]
    if isinstance(e, int):
        like = env["x"]
        return jnp.full_like(like, 0xFFFFFFFF if e else 0)
    op, *args = e
    vals = [_emit(a, env) for a in args]
    if op == "not":
        return ~vals[0]
    if op == "and":
        return vals[0] & vals[1]
    if op == "or":
        return vals[0] | vals[1]
    return vals[0] ^ vals[1]


def packed_life_step(rule: LifeLikeRule | str, words: Array) -> Array:
    """Gives the next generation of a bit-packed periodic grid (see `pack_bits`).

    **Arguments:** `rule` (a `LifeLikeRule` or B/S string); `words`, the uint32 words
    `(..., H, K)` of `pack_bits` (bit `j` of word `k` is column `32 k + j`).

    **Returns:** the next generation's words, same shape.

    The grid gets a one-word periodic halo, then the neighbour count (0..8) is built by
    bitwise full adders from slices of it and the rule applied as a Boolean function of
    (cell, count) fixed at trace time.

    **Example:** `unpack_bits(packed_life_step(LIFE, pack_bits(g)))` is `life_step(LIFE, g)`.
    """
    if isinstance(rule, str):
        from ._rules import parse_rule

        rule = parse_rule(rule)
    return _packed_life_step(rule, jnp.asarray(words))


@eqx.filter_jit
def _packed_life_step(rule, words):
    return _next_from_padded(rule, _pad_halo(words, interleaved=False), interleaved=False)
