"""Baselines no one can argue with: a position weight matrix and logistic regression on k-mers."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._train import fit


class PWM(eqx.Module):
    """A position weight matrix: log-odds of each base at each offset around a site.

    `PWM.from_sites(sites, offset)` estimates it from aligned one-hot windows;
    `pwm.score(x)` gives, at every position i of a sequence, the log-odds that a site sits
    at i (the window starting `offset` positions before i; positions past either end count
    as background, score 0).

    **Fields:** `log_odds` of shape `(w, 4)`, `offset` (the site's index in the window).
    """

    log_odds: Float[Array, "w 4"]
    offset: int = eqx.field(static=True)

    @classmethod
    def from_sites(
        cls,
        sites: Float[Array, "n w 4"] | np.ndarray,
        offset: int,
        *,
        background: Float[Array, " 4"] | np.ndarray | None = None,
        pseudocount: float = 0.5,
    ) -> PWM:
        """Gives the PWM of aligned site windows `(n, w, 4)` (IUPAC weights count
        fractionally) against `background` base frequencies (default uniform).

        **Raises:** `ValueError` for no sites, a bad shape, or `offset` outside the window.
        """
        sites = np.asarray(sites, float)
        if sites.ndim != 3 or sites.shape[0] == 0 or sites.shape[2] != 4:
            raise ValueError(f"PWM.from_sites: sites must have shape (n, w, 4), got {sites.shape}")
        if not 0 <= offset < sites.shape[1]:
            raise ValueError(
                f"PWM.from_sites: offset must be in [0, {sites.shape[1]}), got {offset}"
            )
        bg = np.full(4, 0.25) if background is None else np.asarray(background, float)
        counts = sites.sum(0) + pseudocount
        freqs = counts / counts.sum(1, keepdims=True)
        return cls(jnp.asarray(np.log(freqs / bg)), offset)

    def score(self, x: Float[Array, "t 4"]) -> Float[Array, " t"]:
        w = self.log_odds.shape[0]
        pad = jnp.pad(x, ((self.offset, w - 1 - self.offset), (0, 0)))
        idx = jnp.arange(x.shape[0])[:, None] + jnp.arange(w)[None, :]
        return jnp.einsum("twk,wk->t", pad[idx], self.log_odds)


def kmer_features(x: Float[Array, "t 4"], k: int) -> Float[Array, "t1 f"]:
    """Gives positional k-mer indicators: row i is the one-hot of the k-mer starting at i.

    With IUPAC weights the row is the outer product of the k positions' distributions (the
    probability of each k-mer). Shape `(t - k + 1, 4**k)`; `k = 1` is the one-hot itself.
    """
    if not isinstance(k, int) or k < 1 or k > x.shape[0]:
        raise ValueError(f"kmer_features: k must be an int in [1, {x.shape[0]}], got {k!r}")
    n = x.shape[0] - k + 1
    out = x[:n]
    for j in range(1, k):
        out = (out[:, :, None] * x[j : j + n, None, :]).reshape(n, -1)
    return out


class LogisticRegression(eqx.Module):
    """Multinomial logistic regression: logits = W f + b, on a flat feature vector."""

    weight: Float[Array, "c f"]
    bias: Float[Array, " c"]

    def __init__(self, features: int, classes: int):
        self.weight = jnp.zeros((classes, features))
        self.bias = jnp.zeros(classes)

    def __call__(self, f: Float[Array, " f"]) -> Float[Array, " c"]:
        return self.weight @ f + self.bias


def fit_logistic(
    features: Float[Array, "n f"],
    labels: Int[Array, " n"],
    classes: int,
    *,
    l2: float = 1.0,
    steps: int = 200,
    weights: Float[Array, "g n"] | Float[np.ndarray, "g n"] | None = None,
    key: PRNGKeyArray | None = None,
    progress: bool = False,
) -> LogisticRegression:
    """Gives the L2-regularised logistic regression fitted by L-BFGS through `diffsim.fit`.

    Minimises sum_i NLL_i + (l2 / 2) |W|^2 -- scikit-learn's `LogisticRegression(C=1/l2)`
    objective (the bias is not penalised), so the two agree at the optimum.

    **Arguments:** `features` `(n, f)`; integer `labels` `(n,)`; `classes`; `l2 > 0`;
    `steps` of L-BFGS; `weights`: optional `(g, n)` 0/1 rows -- then g independent models
    are fitted at once (one compilation), model j on the examples with `weights[j] = 1`
    (cross-validation folds), and the result has a leading axis g.

    **Raises:** `ValueError` for disagreeing shapes or `l2 <= 0`.
    """
    features = jnp.asarray(features)
    labels = jnp.asarray(labels)
    if features.ndim != 2 or features.shape[0] != labels.shape[0] or features.shape[0] == 0:
        raise ValueError(
            f"fit_logistic: features (n, f) and labels (n,) disagree: {features.shape}, "
            f"{labels.shape}"
        )
    if not l2 > 0:
        raise ValueError(f"fit_logistic: l2 must be > 0, got {l2!r}")
    single = weights is None
    w = jnp.ones((1, features.shape[0])) if single else jnp.asarray(weights, features.dtype)
    if w.ndim != 2 or w.shape[1] != features.shape[0]:
        raise ValueError(
            f"fit_logistic: weights must have shape (g, {features.shape[0]}), got {w.shape}"
        )

    def loss(model, batch, key):
        logits = jnp.einsum("nf,gcf->gnc", features, model.weight) + model.bias[:, None, :]
        nll = -jnp.take_along_axis(
            jax.nn.log_softmax(logits),
            jnp.broadcast_to(labels[None, :, None], (w.shape[0], labels.shape[0], 1)),
            2,
        )[..., 0]
        per = jnp.sum(w * nll, 1) + 0.5 * l2 * jnp.sum(model.weight**2, axis=(1, 2))
        return jnp.sum(per / jnp.sum(w, 1))

    model = LogisticRegression(features.shape[1], classes)
    model = jax.tree.map(lambda a: jnp.zeros((w.shape[0], *a.shape), features.dtype), model)
    key = jax.random.key(0) if key is None else key
    model = fit(loss, model, optax.lbfgs(), steps=steps, key=key, progress=progress).params
    return jax.tree.map(lambda a: a[0], model) if single else model
