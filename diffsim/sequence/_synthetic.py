"""Synthetic splice-like sequences with known ground truth and a controllable dependency length."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ._dna import one_hot

BRANCH_POINT = "CTAAC"
"""The branch-point motif (the human consensus yUnAy, here fixed) of the positive class."""
DECOY = "CTGGC"
"""The motif of the negative class: the branch point with its adenosine and neighbour changed."""


def branch_point_task(
    key: PRNGKeyArray,
    n: int,
    distance: int,
    *,
    pyrimidine_tract: int = 0,
    motif: str = BRANCH_POINT,
    decoy: str = DECOY,
) -> tuple[jax.Array, jax.Array, dict]:
    """Gives `n` acceptor candidates whose use depends on a motif `distance` nt upstream.

    Each sequence reads: a motif (the branch point for a used acceptor, label 1, or a decoy
    differing at two positions, label 0), then `distance` random nucleotides (the last
    `pyrimidine_tract` of them drawn from C/T only, as before a real acceptor), then the
    acceptor dinucleotide AG. The class is decided by nothing but the motif, which ends
    `distance + 2` positions before the last one: a model predicting at the last position
    must carry one bit across `distance` uninformative nucleotides. The Bayes accuracy is
    100%; a model that cannot reach that far back scores 50%.

    **Arguments:** `key`; `n >= 1`; `distance >= 0`; `pyrimidine_tract` in
    [0, distance]; `motif`, `decoy`: equal-length distinct strings over ACGT.

    **Returns:** `(xs, labels, truth)`: one-hot `(n, len(motif) + distance + 2, 4)`
    (float32), int labels `(n,)`, and `truth` with `informative` (the indices where motif
    and decoy differ) and `dependency` (the distance from the last position back to the
    nearest informative one: `distance + 3` for the default motifs).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"branch_point_task: n must be an int >= 1, got {n!r}")
    if not isinstance(distance, int) or distance < 0:
        raise ValueError(f"branch_point_task: distance must be an int >= 0, got {distance!r}")
    if not 0 <= pyrimidine_tract <= distance:
        raise ValueError(
            f"branch_point_task: pyrimidine_tract must be in [0, {distance}], "
            f"got {pyrimidine_tract}"
        )
    if len(motif) != len(decoy) or motif == decoy:
        raise ValueError(f"branch_point_task: motif {motif!r} and decoy {decoy!r} must differ")
    k1, k2, k3 = jax.random.split(key, 3)
    labels = jax.random.bernoulli(k1, 0.5, (n,)).astype(jnp.int32)
    m = len(motif)
    background = jax.nn.one_hot(jax.random.randint(k2, (n, distance), 0, 4), 4)
    tract = jax.nn.one_hot(1 + 2 * jax.random.randint(k3, (n, pyrimidine_tract), 0, 2), 4)
    background = background.at[:, distance - pyrimidine_tract :].set(tract)
    heads = jnp.asarray(np.stack([one_hot(decoy), one_hot(motif)]))[labels]
    ag = jnp.broadcast_to(jnp.asarray(one_hot("AG")), (n, 2, 4))
    xs = jnp.concatenate([heads, background, ag], axis=1).astype(jnp.float32)
    informative = [i for i in range(m) if motif[i] != decoy[i]]
    truth = {"informative": informative, "dependency": m + distance + 1 - max(informative)}
    return xs, labels, truth
