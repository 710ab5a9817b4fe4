"""DNA as arrays: IUPAC one-hot encoding, reverse complement, windows, ragged batches."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

BASES = "ACGT"
"""Channel order of every one-hot array: A, C, G, T."""

# IUPAC nucleotide codes -> the bases they stand for. U is read as T (RNA).
IUPAC: dict[str, str] = {
    "A": "A",
    "C": "C",
    "G": "G",
    "T": "T",
    "U": "T",
    "R": "AG",
    "Y": "CT",
    "S": "CG",
    "W": "AT",
    "K": "GT",
    "M": "AC",
    "B": "CGT",
    "D": "AGT",
    "H": "ACT",
    "V": "ACG",
    "N": "ACGT",
}
_COMPLEMENT = {
    "A": "T", "C": "G", "G": "C", "T": "A", "U": "A", "R": "Y", "Y": "R", "S": "S",
    "W": "W", "K": "M", "M": "K", "B": "V", "V": "B", "D": "H", "H": "D", "N": "N",
}  # fmt: skip

_TABLE = np.full((256, 4), np.nan)
for _code, _bases in IUPAC.items():
    for _case in (_code, _code.lower()):
        _TABLE[ord(_case)] = [(b in _bases) / len(_bases) for b in BASES]


def one_hot(sequence: str, *, dtype=np.float32) -> np.ndarray:
    """Gives the one-hot encoding of a DNA string, ambiguity codes spread evenly.

    Each position becomes a probability vector over A, C, G, T: a plain base is a unit
    vector, an IUPAC ambiguity code is uniform over the bases it stands for (N = 1/4 each,
    R = A or G = 1/2 each, D = A, G or T = 1/3 each). Lower case (soft-masked repeats) reads
    as upper case; U reads as T.

    **Arguments:** `sequence`, a non-empty string over the IUPAC alphabet
    (ACGTURYSWKMBDHVN, either case); `dtype` of the result.

    **Returns:** a NumPy array of shape `(len(sequence), 4)` whose rows sum to 1.

    **Raises:** `ValueError` for an empty sequence or a character outside the alphabet (the
    error names the character and its position).

    **Example:** `one_hot("ACN")[2]` is `[0.25, 0.25, 0.25, 0.25]`.
    """
    if not isinstance(sequence, str):
        raise ValueError(f"one_hot: sequence must be a str, got {type(sequence).__name__}")
    if len(sequence) == 0:
        raise ValueError("one_hot: sequence is empty")
    codes = np.frombuffer(sequence.encode("latin-1", errors="replace"), np.uint8)
    out = _TABLE[codes]
    bad = np.isnan(out[:, 0])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"one_hot: character {sequence[i]!r} at position {i} is not an IUPAC nucleotide "
            f"code (allowed: {''.join(IUPAC)}, either case)"
        )
    return out.astype(dtype)


def decode(x: Float[Array, "t 4"] | np.ndarray) -> str:
    """Gives the string of a one-hot array: the base where a row is a unit vector, the
    IUPAC code of the bases with equal nonzero weight otherwise."""
    x = np.asarray(x)
    by_set = {bases: code for code, bases in IUPAC.items() if code != "U"}
    out = []
    for row in x:
        bases = "".join(b for b, v in zip(BASES, row) if v > 1e-6)
        if bases not in by_set:
            raise ValueError(f"decode: row {row.tolist()} is not a one-hot IUPAC code")
        out.append(by_set[bases])
    return "".join(out)


def reverse_complement(x):
    """Gives the reverse complement of a DNA string or of a one-hot array.

    For a string, each IUPAC code is complemented (A<->T, C<->G, R<->Y, K<->M, B<->V,
    D<->H; S, W, N stay) and the order reversed. For an array of shape `(..., t, 4)` in
    A, C, G, T order, complementing is reversing the channel axis, so the result is
    `x[..., ::-1, ::-1]`; `one_hot(reverse_complement(s)) == reverse_complement(one_hot(s))`.

    **Raises:** `ValueError` for an empty string, a character outside the alphabet, or an
    array whose last axis is not 4.
    """
    if isinstance(x, str):
        if not x:
            raise ValueError("reverse_complement: sequence is empty")
        try:
            return "".join(_COMPLEMENT[c] for c in reversed(x.upper()))
        except KeyError as e:
            raise ValueError(
                f"reverse_complement: character {e.args[0]!r} is not an IUPAC nucleotide code"
            ) from None
    if x.ndim < 2 or x.shape[-1] != 4:
        raise ValueError(f"reverse_complement: expected shape (..., t, 4), got {x.shape}")
    return x[..., ::-1, ::-1]


def windows(x, length: int, stride: int | None = None, *, pad: bool = False):
    """Gives the windows of `length` positions along the first axis, `stride` apart.

    **Arguments:** `x` of shape `(t, ...)` (a one-hot sequence, or its labels);
    `length >= 1`; `stride >= 1` (default `length`: non-overlapping); `pad`: also give the
    last, partial window, zero-padded (its mask tells the real positions).

    **Returns:** `(windows, mask)`: arrays of shape `(n, length, ...)` and `(n, length)`;
    `mask` is True at real positions. Without `pad` a tail shorter than `length` is dropped.

    **Raises:** `ValueError` for a bad `length`/`stride`, or when no window fits.
    """
    stride = length if stride is None else stride
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"windows: length must be an int >= 1, got {length!r}")
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"windows: stride must be an int >= 1, got {stride!r}")
    x = np.asarray(x)
    t = x.shape[0]
    if t == 0:
        raise ValueError("windows: x is empty")
    starts = list(range(0, t - length + 1, stride))
    if pad and (not starts or starts[-1] + length < t):
        starts.append(starts[-1] + stride if starts else 0)
    if not starts:
        raise ValueError(f"windows: x has {t} positions, fewer than length={length}")
    out = np.zeros((len(starts), length, *x.shape[1:]), x.dtype)
    mask = np.zeros((len(starts), length), bool)
    for i, s in enumerate(starts):
        piece = x[s : s + length]
        out[i, : len(piece)] = piece
        mask[i, : len(piece)] = True
    return out, mask


def pad_batch(
    sequences: Sequence, length: int | None = None
) -> tuple[np.ndarray, Bool[np.ndarray, "b t"]]:
    """Gives a ragged list of sequences as one zero-padded array and its mask.

    **Arguments:** `sequences`: a non-empty list of strings (one-hot encoded here) or of
    arrays of shape `(t_i, ...)`; `length`: the padded length (default: the longest).

    **Returns:** `(batch, mask)` of shapes `(b, length, ...)` and `(b, length)`; `mask` is
    True at real positions. Padded positions are zero (not N: a model sees no base there,
    and the recurrent layers keep their state across them).

    **Raises:** `ValueError` for an empty list, an empty sequence (naming its index), or a
    sequence longer than `length`.
    """
    if len(sequences) == 0:
        raise ValueError("pad_batch: sequences is empty")
    arrays = []
    for i, s in enumerate(sequences):
        a = one_hot(s) if isinstance(s, str) else np.asarray(s)
        if a.shape[0] == 0:
            raise ValueError(f"pad_batch: sequence {i} is empty")
        arrays.append(a)
    longest = max(a.shape[0] for a in arrays)
    length = longest if length is None else length
    if longest > length:
        raise ValueError(f"pad_batch: a sequence has {longest} positions > length={length}")
    tail = arrays[0].shape[1:]
    if any(a.shape[1:] != tail for a in arrays):
        raise ValueError("pad_batch: sequences disagree on their trailing shape")
    out = np.zeros((len(arrays), length, *tail), arrays[0].dtype)
    mask = np.zeros((len(arrays), length), bool)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
        mask[i, : a.shape[0]] = True
    return out, mask


def gc_content(x: Float[Array, "t 4"]) -> Float[Array, ""]:
    """Gives the expected fraction of G and C (ambiguity codes counted by their weights)."""
    return jnp.mean(x[:, 1] + x[:, 2])
