"""Neighbour lists: an O(N) cell list with a Verlet skin, in fixed-capacity buffers.

A `NeighborList` holds every unordered pair {i, j} closer than `cutoff + skin` at its
reference positions, each pair once, padded to a fixed `capacity` with the index
`n` (one past the last atom). Inside `jit`, `nbrs.update(positions)` rebuilds the
list only when some atom has moved more than `skin / 2` since the last build, and
sets the sticky `overflow` flag if the pairs (or the atoms in a cell) exceed the
buffers. Nothing is ever silently wrong:

- energy functions raise (`eqx.error_if`) when handed an overflowed list;
- outside `jit`, `update_neighbors(nbrs, positions)` and `reallocate(...)` give a
  list with larger buffers;
- `simulate(...)` checks the flag after each chunk of steps and redoes the chunk with
  a reallocated list.

The build bins atoms into cells at least `(cutoff + skin) / reach` wide (in
fractional coordinates, so triclinic cells work), sorts them by cell and scans a half
stencil of neighbouring cells, so each pair is generated once. Free space, and boxes
too small for a stencil, use the all-pairs build.
"""

from __future__ import annotations

import functools
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import is_concrete
from .._custom_types import Array, Float, Int
from ._space import AbstractSpace, box_widths, check_box


@functools.lru_cache(maxsize=32)
def _all_pairs_np(n: int) -> np.ndarray:
    i, j = np.triu_indices(n, k=1)
    return np.stack([i, j], axis=-1).astype(np.int32)


def all_pairs(n: int) -> Int[Array, "m 2"]:
    """Gives every pair i < j of `n` atoms, shape `(n (n - 1) / 2, 2)` (the dense path)."""
    return jnp.asarray(_all_pairs_np(n))


class NeighborList(eqx.Module):
    """A fixed-capacity list of atom pairs within `cutoff + skin` (each pair once).

    **Fields:**

    - `pairs`: shape `(capacity, 2)`; padding rows hold `(n, n)`.
    - `reference`: shape `(n, d)`, the positions at the last build.
    - `overflow`: bool scalar, sticky; set when a build did not fit.
    - `count`: pairs found at the last build (may exceed `capacity` on overflow).
    - `max_occupancy`: most atoms in one cell at the last build.
    - `rebuilds`: number of builds since allocation (a diagnostic).
    - static: `space`, `cutoff`, `skin`, `grid` (cells per axis, or `None` for the
      all-pairs build), `reach` (stencil half-width in cells), `cell_capacity`.

    Make one with `neighbor_list(positions, space, cutoff, skin=...)`.
    """

    pairs: Int[Array, "capacity 2"]
    reference: Float[Array, "n d"]
    overflow: Array
    count: Array
    max_occupancy: Array
    rebuilds: Array
    space: AbstractSpace
    cutoff: float = eqx.field(static=True)
    skin: float = eqx.field(static=True)
    grid: tuple[int, ...] | None = eqx.field(static=True)
    reach: int = eqx.field(static=True)
    cell_capacity: int = eqx.field(static=True)

    @property
    def capacity(self) -> int:
        return self.pairs.shape[0]

    def needs_rebuild(self, positions) -> Array:
        """Gives whether some atom moved more than `skin / 2` since the last build."""
        d = self.space.displacement(positions, self.reference.astype(positions.dtype))
        return jnp.max(jnp.sum(d * d, axis=-1)) > (0.5 * self.skin) ** 2

    def update(self, positions: Float[Array, "n d"]) -> NeighborList:
        """Gives the list valid at `positions`, rebuilt in place only if needed (jit-able).

        Never reallocates: check `overflow` afterwards (or use `update_neighbors`
        outside jit, or `simulate`, which do).
        """
        if positions.shape != self.reference.shape:
            raise ValueError(
                f"NeighborList.update: positions has shape {positions.shape}, the list was "
                f"built for {self.reference.shape}"
            )
        return jax.lax.cond(
            self.needs_rebuild(positions), lambda: self.rebuild(positions), lambda: self
        )

    def rebuild(self, positions: Float[Array, "n d"]) -> NeighborList:
        """Gives the list rebuilt at `positions` with the same buffers (jit-able)."""
        pairs, count, occ = _build(
            positions,
            self.space,
            self.cutoff + self.skin,
            self.grid,
            self.reach,
            self.cell_capacity,
            self.capacity,
        )
        overflow = self.overflow | (count > self.capacity) | (occ > self.cell_capacity)
        return NeighborList(
            pairs,
            positions.astype(self.reference.dtype),
            overflow,
            count,
            occ,
            self.rebuilds + 1,
            self.space,
            self.cutoff,
            self.skin,
            self.grid,
            self.reach,
            self.cell_capacity,
        )


def neighbor_list(
    positions: Float[Array, "n d"],
    space: AbstractSpace,
    cutoff: float,
    *,
    skin: float = 0.3,
    capacity_factor: float = 1.25,
    min_capacity: int = 0,
    min_cell_capacity: int = 0,
    dense: bool | None = None,
) -> NeighborList:
    """Gives a neighbour list for `positions` (allocates; call outside `jit`).

    **Arguments:**

    - `positions`: shape `(n, d)` (length units).
    - `space`: the space; periodic boxes use the cell list.
    - `cutoff`: the interaction range (the potential's `cutoff_radius`).
    - `skin`: extra range; the list stays valid until an atom moves `skin / 2`.
    - `capacity_factor`: head-room multiplying the number of pairs found now (cells
      get the largest occupancy found plus max(2, 10%)).
    - `min_capacity`, `min_cell_capacity`: lower bounds on the buffers (reallocation).
    - `dense`: force the all-pairs build (`True`) or the cell list (`False`); `None`
      picks the cheaper.

    **Returns:** a `NeighborList` with `overflow == False`.

    **Raises:** `ValueError` for NaN positions, a non-positive cutoff, a negative skin,
    a periodic box narrower than `2 (cutoff + skin)`, or a cell list asked of a space
    that cannot hold one.

    **Example:**

    ```python
    nbrs = neighbor_list(positions, space, energy.cutoff_radius, skin=0.3)
    forces = -jax.grad(energy)(positions, nbrs)
    ```
    """
    positions = jnp.asarray(positions)
    if not is_concrete(positions):
        raise ValueError(
            "neighbor_list allocates buffers and must be called outside jit; inside jit use "
            "nbrs.update(positions)"
        )
    if positions.ndim != 2:
        raise ValueError(f"positions must have shape (n, d), got {positions.shape}")
    widths = box_widths(space)
    if widths is not None and jnp.shape(widths)[0] != positions.shape[1]:
        raise ValueError(
            f"neighbor_list: positions have {positions.shape[1]} coordinates but the box has "
            f"{jnp.shape(widths)[0]} dimensions"
        )
    if not np.all(np.isfinite(np.asarray(positions))):
        raise ValueError("positions contain NaN or inf; neighbour list not built")
    if not (math.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"neighbor_list: cutoff must be finite and > 0, got {cutoff}")
    if not (math.isfinite(skin) and skin >= 0):
        raise ValueError(f"neighbor_list: skin must be finite and >= 0, got {skin}")
    if capacity_factor < 1:
        raise ValueError(f"neighbor_list: capacity_factor must be >= 1, got {capacity_factor}")
    rlist = cutoff + skin
    check_box(space, rlist, "(cutoff + skin)")
    n, d = positions.shape
    grid, reach = _choose_grid(space, rlist, n, d)
    if dense is True or (dense is None and grid is not None and _dense_cheaper(grid, reach, n, d)):
        grid, reach = None, 0
    if dense is False and grid is None:
        raise ValueError(
            "neighbor_list: dense=False but no cell list fits: need a periodic box at least "
            f"3 (cutoff + skin) = {3 * rlist:g} wide in every direction"
        )
    if grid is None:
        cell_capacity = 0
    else:
        occ = int(_occupancy(positions, space, grid))
        # Packing bounds how much a cell's occupancy can grow, so a small margin does;
        # every candidate slot costs work in each rebuild.
        cell_capacity = max(occ + max(2, int(math.ceil(0.1 * occ))), min_cell_capacity)
    m = max(n * (n - 1) // 2, 1)
    # Count first (a build into a one-row buffer still counts every pair), then size the
    # buffer to the count times the head-room.
    _, count, _ = _build_jit(positions, space, rlist, grid, reach, cell_capacity, 1)
    capacity = max(int(math.ceil(int(count) * capacity_factor)), min_capacity, 1)
    capacity = min(capacity, m)  # all pairs: the list can never need more
    pairs, count, occ = _build_jit(positions, space, rlist, grid, reach, cell_capacity, capacity)
    assert int(count) <= capacity
    return NeighborList(
        pairs,
        positions,
        jnp.asarray(False),
        count,
        occ,
        jnp.asarray(0, jnp.int32),
        space,
        float(cutoff),
        float(skin),
        grid,
        reach,
        cell_capacity,
    )


def reallocate(
    nbrs: NeighborList, positions: Float[Array, "n d"], *, growth: float = 2.0
) -> NeighborList:
    """Gives a new list at `positions` with bigger buffers (call outside `jit`).

    The buffers are at least `growth` times the old ones and at least 1.25 times the
    pairs and cell occupancy that `nbrs` last found (an overflowed list still counts
    them), so one reallocation usually suffices. `space`, `cutoff`, `skin` are kept.
    """
    return neighbor_list(
        positions,
        nbrs.space,
        nbrs.cutoff,
        skin=nbrs.skin,
        min_capacity=int(math.ceil(max(nbrs.capacity * growth, int(nbrs.count) * 1.25))),
        min_cell_capacity=int(
            math.ceil(max(nbrs.cell_capacity * growth, int(nbrs.max_occupancy) * 1.25))
        ),
        dense=nbrs.grid is None,
    )


def update_neighbors(nbrs: NeighborList, positions: Float[Array, "n d"]) -> NeighborList:
    """Gives the list valid at `positions`, reallocating if it overflowed (outside jit).

    The caller-facing update: it never returns an overflowed list.
    """
    new = _update_jit(nbrs, positions)
    if bool(new.overflow):
        new = reallocate(new, positions)
    return new


@eqx.filter_jit
def _update_jit(nbrs, positions):
    return nbrs.update(positions)


# --- the build -----------------------------------------------------------------------


def _choose_grid(space, rlist, n, d):
    """Cells per axis and stencil reach minimising candidates, or (None, 0)."""
    widths = box_widths(space)
    if widths is None:
        return None, 0
    w = np.asarray(widths, dtype=np.float64)
    density = n / float(np.prod(w))
    best = None
    for reach in (1, 2):
        grid = tuple(int(math.floor(x * reach / rlist)) for x in w)
        if min(grid) < 2 * reach + 1:
            continue
        mean = n / float(np.prod(grid))
        cap = mean + 3.0 * math.sqrt(mean) + 1.0
        stencil = ((2 * reach + 1) ** d + 1) // 2
        cost = stencil * cap
        if best is None or cost < best[0]:
            best = (cost, grid, reach)
    del density
    if best is None:
        return None, 0
    return best[1], best[2]


def _dense_cheaper(grid, reach, n, d):
    mean = n / float(np.prod(grid))
    cap = mean + 3.0 * math.sqrt(mean) + 1.0
    stencil = ((2 * reach + 1) ** d + 1) // 2
    # The all-pairs build skips the sort and the cell table, so it wins at equal candidates.
    return n / 2 <= 1.5 * stencil * cap


def _stencil(reach, d):
    """Half stencil: the zero offset first, then the offsets lexicographically > 0."""
    offs = [o for o in itertools.product(range(-reach, reach + 1), repeat=d) if o > (0,) * d]
    return np.array([(0,) * d, *offs], dtype=np.int32)


def _cells(positions, space, grid):
    s = space.fractional(positions)
    s = s - jnp.floor(s)
    g = jnp.asarray(grid, dtype=positions.dtype)[None, :]
    c = jnp.clip(jnp.floor(s * g).astype(jnp.int32), 0, jnp.asarray(grid, jnp.int32)[None, :] - 1)
    strides = np.cumprod((1,) + tuple(grid[::-1]))[:-1][::-1].astype(np.int32)
    return c, c @ jnp.asarray(strides), strides


@functools.partial(jax.jit, static_argnums=(2,))
def _occupancy(positions, space, grid):
    _, cid, _ = _cells(positions, space, grid)
    return jnp.max(jnp.bincount(cid, length=int(np.prod(grid))))


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _build_jit(positions, space, rlist, grid, reach, cell_capacity, capacity):
    return _build(positions, space, rlist, grid, reach, cell_capacity, capacity)


def _build(positions, space, rlist, grid, reach, cell_capacity, capacity):
    """Gives (pairs, number of pairs found, max atoms per cell)."""
    n = positions.shape[0]
    rlist2 = jnp.asarray(rlist * rlist, positions.dtype)
    if grid is None:
        cand = all_pairs(n)
        r2 = sum(c * c for c in space.pair_components(positions, cand[:, 0], cand[:, 1]))
        flat, count = _compact(r2 < rlist2, capacity)
        pairs = cand.at[flat].get(mode="fill", fill_value=n)
        return pairs, count, jnp.asarray(0, jnp.int32)

    ncells = int(np.prod(grid))
    c, cid, strides = _cells(positions, space, grid)
    order = jnp.argsort(cid, stable=True).astype(jnp.int32)
    sorted_cid = cid[order]
    counts = jnp.bincount(cid, length=ncells).astype(jnp.int32)
    starts = jnp.cumsum(counts) - counts
    rank = jnp.arange(n, dtype=jnp.int32)
    slot = rank - starts[sorted_cid]
    # table[cell, slot] = rank (position in cell-sorted order), n for empty slots.
    table = jnp.full((ncells, cell_capacity), n, jnp.int32)
    table = table.at[sorted_cid, slot].set(rank, mode="drop")
    offsets = jnp.asarray(_stencil(reach, len(grid)))
    nc = jnp.mod(
        c[order][:, None, :] + offsets[None, :, :], jnp.asarray(grid, jnp.int32)[None, None, :]
    )
    cand = table[nc @ jnp.asarray(strides)].reshape(n, -1)
    width = cand.shape[1]
    # Candidates are taken in cell-sorted order, so the gathers below stay local.
    pos = positions[order]
    rows = jnp.broadcast_to(rank[:, None], cand.shape).ravel()
    cols = cand.ravel()
    r2 = sum(x * x for x in space.pair_components(pos, rows, cols))
    # In its own cell (the first cell_capacity columns) an atom pairs only with later ranks.
    own = jnp.broadcast_to((jnp.arange(width) < cell_capacity)[None, :], cand.shape).ravel()
    mask = (cols < n) & (r2 < rlist2) & (~own | (cols > rows))
    flat, count = _compact(mask, capacity)
    i = order.at[flat // width].get(mode="fill", fill_value=n)
    j = order.at[cols.at[flat].get(mode="fill", fill_value=n)].get(mode="fill", fill_value=n)
    return jnp.stack([i, j], axis=-1), count, jnp.max(counts)


def _compact(mask, capacity):
    """Gives (flat indices of the first `capacity` True entries, padded with len(mask); count)."""
    m = mask.shape[0]
    pos = _cumsum(mask.astype(jnp.int32)) - 1
    count = pos[-1] + 1
    dest = jnp.where(mask, pos, capacity)
    flat = jnp.full((capacity,), m, jnp.int32)
    flat = flat.at[dest].set(jnp.arange(m, dtype=jnp.int32), mode="drop")
    return flat, count


_BLOCK = 64


def _cumsum(x):
    """Inclusive cumsum of small non-negative int32s, blockwise as matrix products.

    XLA's cumsum on CPU is several times slower than a product with a triangular
    matrix of ones on blocks of 64 (exact: block sums are far below 2^24).
    """
    m = x.shape[0]
    if m <= 4 * _BLOCK:
        return jnp.cumsum(x)
    pad = (-m) % _BLOCK
    xb = jnp.pad(x, (0, pad)).reshape(-1, _BLOCK).astype(jnp.float32)
    tri = jnp.triu(jnp.ones((_BLOCK, _BLOCK), jnp.float32))
    local = jnp.matmul(xb, tri, precision=jax.lax.Precision.HIGHEST).astype(jnp.int32)
    totals = local[:, -1]
    offsets = _cumsum(totals) - totals
    return (local + offsets[:, None]).ravel()[:m]
