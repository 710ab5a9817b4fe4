"""Known life patterns (glider, blinker, block, Gosper gun) and a run-length (RLE) reader."""

# ruff: noqa: F722  (jaxtyping shape strings are not forward references)

import re

import numpy as np


def from_rle(text: str) -> np.ndarray:
    """Gives the 0/1 uint8 array of a pattern written in run-length encoding (RLE).

    Reads the usual format: optional `#` comment lines, an optional header
    `x = .., y = .., rule = ..`, then runs of `b` (dead), `o` (alive), `$` (end of row),
    ending with `!`. Any other letter counts as alive.

    **Raises:** `ValueError` if the body has characters RLE does not allow.

    **Example:** `from_rle("bo$2bo$3o!")` is the glider.
    """
    lines = [ln.strip() for ln in text.strip().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    width = height = None
    if lines and lines[0].replace(" ", "").startswith("x="):
        header = dict(kv.split("=", 1) for kv in lines[0].replace(" ", "").split(",") if "=" in kv)
        width, height = int(header["x"]), int(header["y"])
        lines = lines[1:]
    body = "".join(lines).split("!")[0]
    if not re.fullmatch(r"[0-9a-zA-Z$]*", body):
        raise ValueError(f"from_rle: unexpected characters in pattern body {body!r}")
    rows, row, count = [], [], ""
    for ch in body:
        if ch.isdigit():
            count += ch
            continue
        n = int(count) if count else 1
        count = ""
        if ch == "$":
            rows.append(row)
            rows.extend([[]] * (n - 1))
            row = []
        else:
            row.extend([0 if ch == "b" else 1] * n)
    rows.append(row)
    w = max([len(r) for r in rows] + [width or 0])
    h = max(len(rows), height or 0)
    out = np.zeros((h, w), np.uint8)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def place(pattern: np.ndarray, shape: tuple[int, int], at: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Gives a zero uint8 grid of `shape` with `pattern` written at top-left corner `at`.

    **Raises:** `ValueError` if the pattern does not fit.
    """
    pattern = np.asarray(pattern)
    h, w = pattern.shape
    r, c = at
    if r < 0 or c < 0 or r + h > shape[0] or c + w > shape[1]:
        raise ValueError(f"place: a {pattern.shape} pattern at {at} does not fit in {shape}")
    grid = np.zeros(shape, np.uint8)
    grid[r : r + h, c : c + w] = pattern
    return grid


GLIDER = from_rle("bo$2bo$3o!")
"""The glider (moves one cell down and one right every 4 generations)."""
BLINKER = from_rle("3o!")
"""The blinker (period 2)."""
BLOCK = from_rle("2o$2o!")
"""The block (still life)."""
GOSPER_GUN = from_rle(
    """x = 36, y = 9, rule = B3/S23
24bo$22bobo$12b2o6b2o12b2o$11bo3bo4b2o12b2o$2o8bo5bo3b2o$2o8bo3bob2o4b
obo$10bo5bo7bo$11bo3bo$12b2o!"""
)
"""Gosper's glider gun (period 30, one glider per period heading down and right)."""
