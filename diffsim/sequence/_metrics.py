"""Per-nucleotide site metrics as SpliceAI reports them: top-k accuracy and PR-AUC."""

from __future__ import annotations

import numpy as np


def average_precision(scores, positives) -> float:
    """Gives the area under the precision-recall curve (average precision, step-wise).

    AP = sum_k (R_k - R_{k-1}) P_k over the ranking by decreasing score (ties broken by
    position); scikit-learn's `average_precision_score` computes the same number.

    **Raises:** `ValueError` when there are no positives or the shapes differ.
    """
    s, y = np.asarray(scores, float).ravel(), np.asarray(positives, bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"average_precision: scores {s.shape} and positives {y.shape} differ")
    if not y.any():
        raise ValueError("average_precision: no positives")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # Group tied scores: precision and recall are read at the end of each group.
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def top_k_accuracy(scores, positives) -> float:
    """Gives SpliceAI's top-k accuracy: the fraction of true sites among the k
    highest-scoring positions, with k the number of true sites."""
    s, y = np.asarray(scores, float).ravel(), np.asarray(positives, bool).ravel()
    k = int(y.sum())
    if k == 0:
        raise ValueError("top_k_accuracy: no positives")
    top = np.argsort(-s, kind="stable")[:k]
    return float(y[top].mean())
