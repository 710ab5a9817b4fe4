"""All 256 elementary rules recovered by backpropagation from a few observed rows.

For each Wolfram rule, a random periodic row of `width` cells is run for `frames` rows.
A `LocalRuleNet` (a width-3 convolution, i.e. a receptive field equal to the
neighbourhood, then a per-cell MLP) is trained by Adam to predict each row from the
previous one; all 256 networks train at once (vmap, one compiled program). The rule
table is read off the trained network by evaluating it on the 8 neighborhoods and
compared with the truth. Reports the fraction of rules recovered exactly, the median
number of training steps until a rule's table is (and stays) exact, and any rule whose
data never shows some neighbourhood (unidentifiable, reported rather than guessed).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

from diffsim.automata import (
    ElementaryRule,
    compare_tables,
    elementary_data,
    observed_configurations,
    run_elementary,
    single_cell,
)

from ._ca_common import hard_rollout, init_stack, stack_tables, steps_to_exact, train_stack, unstack

matplotlib.use("Agg")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    width: int = dataclasses.field(default=128, metadata={"min": 3, "max": 100_000})
    frames: int = dataclasses.field(default=4, metadata={"min": 2, "max": 10_000})
    channels: int = dataclasses.field(default=8, metadata={"min": 1, "max": 256})
    hidden: int = dataclasses.field(default=16, metadata={"min": 1, "max": 256})
    steps: int = dataclasses.field(default=300, metadata={"min": 1, "max": 100_000})
    lr: float = dataclasses.field(default=3e-2, metadata={"min_exclusive": 0})
    rules: list[int] = dataclasses.field(
        default_factory=lambda: list(range(256)),
        metadata={"help": "Wolfram numbers to infer (all 256 by default)"},
    )
    log_every: int = dataclasses.field(default=2, metadata={"min": 1})

    def __post_init__(self):
        for n in self.rules:
            ElementaryRule(n)
        if not self.rules:
            raise ValueError("key 'rules' must list at least one rule number")


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    numbers = list(cfg.rules)
    truth = jnp.stack([ElementaryRule(n).table for n in numbers])
    key = jax.random.key(cfg.seed)
    keys = jax.random.split(jax.random.fold_in(key, 0), len(numbers))
    data = jax.vmap(lambda t, k: elementary_data(t, width=cfg.width, frames=cfg.frames, key=k))(
        truth, keys
    )
    observed = np.asarray(jax.vmap(lambda f: observed_configurations(f, 1))(data))
    models = init_stack(1, len(numbers), cfg.channels, cfg.hidden, key=jax.random.fold_in(key, 1))
    result = train_stack(
        models,
        data,
        truth,
        steps=cfg.steps,
        lr=cfg.lr,
        k=1,
        key=jax.random.fold_in(key, 2),
        directory=run.dir / "train",
        resume=run.resume,
        log_every=cfg.log_every,
        progress=not run.quiet,
    )
    learned = np.asarray(stack_tables(result.params))
    truth = np.asarray(truth)
    first = steps_to_exact(result.history, len(numbers))
    rows, n_exact, n_unid = [], 0, 0
    for i, n in enumerate(numbers):
        rep = compare_tables(learned[i], truth[i], observed[i])
        n_exact += rep["exact"] and rep["unidentifiable"] == 0
        n_unid += rep["unidentifiable"] > 0
        rows.append((n, rep, first[i]))
    done = [f for f in first if f >= 0]

    lines = [
        "| rule | learned table (000..111) | truth | exact | unidentifiable | steps |",
        "|---|---|---|---|---|---|",
    ]
    for (n, rep, f), lt, tt, ob in zip(rows, learned, truth, observed):
        shown = "".join(str(v) if o else "?" for v, o in zip(lt, ob))
        lines.append(
            f"| {n} | {shown} | {''.join(map(str, tt))} | {rep['exact']} | "
            f"{rep['unidentifiable']} | {f} |"
        )
    (run.dir / "rules.md").write_text("\n".join(lines) + "\n")

    # Learned table against the truth for every rule.
    fig, axes = plt.subplots(1, 3, figsize=(9, 8))
    for ax, img, title in [
        (axes[0], truth, "truth"),
        (axes[1], learned, "learned"),
        (axes[2], (learned != truth) & observed, "wrong (observed)"),
    ]:
        ax.imshow(img, aspect="auto", cmap="gray_r", interpolation="nearest", vmin=0, vmax=1)
        ax.set_title(title)
        ax.set_xlabel("neighbourhood 4l+2c+r")
    axes[0].set_ylabel("rule index")
    run.save_figure(fig, "tables.png")

    # Space-time diagrams: the true rule and the learned network (thresholded) from one cell.
    show = [n for n in (30, 90, 110, 184) if n in numbers] or numbers[:4]
    fig, axes = plt.subplots(2, len(show), figsize=(3 * len(show), 5), squeeze=False)
    width, steps = 81, 40
    for j, n in enumerate(show):
        i = numbers.index(n)
        model = unstack(result.params, i)
        rows_true = np.asarray(run_elementary(n, single_cell(width), steps))
        rows_net = np.asarray(hard_rollout(model, single_cell(width), steps))
        axes[0, j].imshow(rows_true, cmap="gray_r", interpolation="nearest")
        axes[0, j].set_title(f"rule {n}: truth")
        axes[1, j].imshow(rows_net, cmap="gray_r", interpolation="nearest")
        axes[1, j].set_title(f"rule {n}: learned network")
    run.save_figure(fig, "spacetime.png")

    metrics = {
        "rules": len(numbers),
        "recovered": int(n_exact),
        "fraction_recovered": n_exact / len(numbers),
        "rules_with_unidentifiable_entries": int(n_unid),
        "median_steps_to_exact": float(np.median(done)) if done else -1.0,
        "max_steps_to_exact": int(max(done)) if done else -1,
        "final_mean_loss": float(result.history[-1]["mean_loss"]),
    }
    run.log(
        f"recovered {n_exact}/{len(numbers)} rules exactly; median steps "
        f"{metrics['median_steps_to_exact']}, max {metrics['max_steps_to_exact']}"
    )
    return metrics
