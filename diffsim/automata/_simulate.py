"""Steps and rollouts of elementary (1D) and life-like (2D) automata.

Each simulator is a step run by `diffsim.rollout`. Life-like rules have two steps that
give identical results: `RollSum()` (neighbour count by eight rolls, then a table
lookup; works on any dtype and batch) and `BitPacked()` (32 cells per uint32 word,
neighbour counts by bitwise adders; needs the width to be a multiple of 32).
"""

# ruff: noqa: F722  (jaxtyping shape strings are not forward references)

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np

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

    Every step moves `H * W / 8` bytes in and out instead of `H * W` (or more), and does
    about 30 word operations per 32 cells.
    """

    def encode(self, grid):
        return pack_bits(grid)

    def decode(self, state, like):
        return unpack_bits(state).astype(like.dtype)

    def step(self, rule, state):
        return packed_life_step(rule, state)


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
    return _run_life(rule, grid, int(steps), method, frames)


@eqx.filter_jit
def _run_life(rule, grid, steps, method, frames):
    def step(s, _):
        s2 = method.step(rule, s)
        return s2, (method.decode(s2, grid) if frames else None)

    final, outs = rollout(step, method.encode(grid), length=steps)
    if not frames:
        return method.decode(final, grid)
    if outs is None:
        return grid[None]
    return jnp.concatenate([grid[None], outs])


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
    bits = (grid != 0).astype(jnp.uint32).reshape(*grid.shape[:-1], grid.shape[-1] // 32, 32)
    shifts = jnp.arange(32, dtype=jnp.uint32).reshape((1,) * (bits.ndim - 1) + (32,))
    return jnp.sum(bits << shifts, axis=-1, dtype=jnp.uint32)


def unpack_bits(words: Array) -> Shaped[Array, "*batch h w"]:
    """Gives the 0/1 uint8 grid `(..., H, 32 * K)` of packed words `(..., H, K)`."""
    words = jnp.asarray(words)
    shifts = jnp.arange(32, dtype=jnp.uint32).reshape((1,) * words.ndim + (32,))
    bits = (words[..., None] >> shifts) & _U(1)
    return bits.reshape(*words.shape[:-1], words.shape[-1] * 32).astype(jnp.uint8)


def _half_add(a, b):
    return a ^ b, a & b


def _full_add(a, b, c):
    t = a ^ b
    return t ^ c, (a & b) | (t & c)


def packed_life_step(rule: LifeLikeRule | str, words: Array) -> Array:
    """Gives the next generation of a bit-packed periodic grid (see `pack_bits`).

    The 3x3 block sum T (0..9, the cell included) is built from two bitwise adders:
    column sums of three rows (2 bits) and the sum of three neighbouring column sums
    (4 bits); the rule is then a Boolean function of (cell, T) fixed at trace time.
    """
    if isinstance(rule, str):
        from ._rules import parse_rule

        rule = parse_rule(rule)
    x = words
    up = jnp.roll(x, 1, axis=-2)
    down = jnp.roll(x, -1, axis=-2)
    c0, c1 = _full_add(up, x, down)

    def west(a):  # bit j holds the cell one column to the left
        return (a << _U(1)) | (jnp.roll(a, 1, axis=-1) >> _U(31))

    def east(a):  # bit j holds the cell one column to the right
        return (a >> _U(1)) | (jnp.roll(a, -1, axis=-1) << _U(31))

    w0, w1, e0, e1 = west(c0), west(c1), east(c0), east(c1)
    t0, k0 = _full_add(w0, c0, e0)
    p, q = _full_add(w1, c1, e1)
    t1, k1 = _half_add(p, k0)
    t2, t3 = _half_add(q, k1)
    bits = (t0, t1, t2, t3)

    def eq(v) -> jnp.ndarray:
        terms = [b if (v >> i) & 1 else ~b for i, b in enumerate(bits)]
        out = terms[0]
        for term in terms[1:]:
            out = out & term
        return out

    born, keep = set(rule.birth), {n + 1 for n in rule.survive}
    result = jnp.zeros_like(x)
    for v in range(10):
        if v in born and v in keep:
            result = result | eq(v)
        elif v in born:
            result = result | (~x & eq(v))
        elif v in keep:
            result = result | (x & eq(v))
    return result
