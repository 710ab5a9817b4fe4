"""Predictive coding, feedback alignment and backprop trained on scikit-learn's 8x8 digits.

One MLP architecture, the same initial weights, batches, optimiser (Adam) and number of
weight updates for every rule; only where each layer's error comes from differs:
backprop (transported weights), predictive coding (value and error neurons settling for
a fixed number of inference iterations, then a local Hebbian update; "pc" with the
output error weighted by a precision pi = `pc_output_precision` < 1, which brings PC
closer to backprop, "pc_plain" with pi = 1), feedback alignment and direct feedback
alignment (fixed random feedback). Learning curves on one plot and the final test
accuracy of each rule on a held-out stratified split.
"""

from __future__ import annotations

import dataclasses

from ._pc_common import TrainingConfig, load_digits, train_and_report


@dataclasses.dataclass(frozen=True)
class Config(TrainingConfig):
    hidden: list[int] = dataclasses.field(default_factory=lambda: [64, 64])
    test_size: int = dataclasses.field(default=497, metadata={"min": 10, "max": 1000})


def run(cfg: Config, run) -> dict:
    x, labels = load_digits()
    return train_and_report(cfg, run, x, labels, "digits (8x8)", "8x8 digits (scikit-learn)")
