"""How far back the credit reaches: |d loss / d x_{t-d}| against the distance d."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def credit_by_distance(
    loss_fn: Callable[[Float[Array, "t d"]], Float[Array, ""]],
    xs: Float[Array, "b t d"],
) -> Float[Array, " t"]:
    """Gives the mean norm of the loss's gradient with respect to the input d positions back.

    For a loss computed at the last position of a sequence (a sequence-level prediction,
    or the per-position loss at the end), `credit[d] = mean_b |d loss / d x_{t-1-d}|`: the
    size of the learning signal that reaches the nucleotide d positions before the
    prediction. A vanilla RNN's credit decays exponentially in d; a gated cell's much more
    slowly; truncated BPTT with window k gives exactly 0 beyond the window.

    **Arguments:** `loss_fn(x)` for one sequence `x` of shape `(t, d)`; `xs` a batch
    `(b, t, d)`.

    **Returns:** an array of shape `(t,)` indexed by the distance d = 0 .. t-1.
    """
    if xs.ndim != 3 or xs.shape[0] == 0 or xs.shape[1] == 0:
        raise ValueError(f"credit_by_distance: xs must have shape (b, t, d), got {xs.shape}")
    g = jax.jit(jax.vmap(jax.grad(loss_fn)))(xs)
    return jnp.mean(jnp.linalg.norm(g, axis=-1), axis=0)[::-1]


def decay_rate(credit, start: int = 1, stop: int | None = None) -> tuple[float, float]:
    """Gives the per-position decay factor and the R^2 of a line fitted to log credit.

    Fits log credit[d] = a + d log(rate) over `start <= d < stop` (positions where the
    credit is zero are skipped). A rate below 1 is exponential decay.
    """
    c = np.asarray(credit)[start:stop]
    d = np.arange(start, start + len(c))
    keep = c > 0
    if keep.sum() < 3:
        raise ValueError("decay_rate: fewer than three positions with nonzero credit")
    y, d = np.log(c[keep]), d[keep]
    slope, icpt = np.polyfit(d, y, 1)
    resid = y - (slope * d + icpt)
    r2 = 1 - resid.var() / max(y.var(), 1e-300)
    return float(np.exp(slope)), float(r2)
