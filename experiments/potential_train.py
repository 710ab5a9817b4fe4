"""Force matching: learning curves of an invariant and an equivariant potential.

The data set (made once by `potential_dataset`, cached in `~/.cache/diffsim/data` or
`$DIFFSIM_DATA`) is split into a
fixed test set, a fixed validation set and a training pool; for each training-set
size, each model (SchNet: distances only; PaiNN: E(3)-equivariant, l = 0 and 1
features) is trained by force matching (energy + forces, forces = -grad E) with Adam
and a cosine schedule, selected on validation and scored on the test set: energy MAE
in meV/atom, force MAE in meV/Angstrom. The published claim tested: the equivariant
model is the more data-efficient.

The model named by `export` at the largest size is saved as `model.eqx` in the run
directory, so `diffsim forces --model RUN_DIR` and `DiffsimCalculator(RUN_DIR)` use
it. Each training has its own folder with checkpoints: `--resume` skips finished
ones and continues the interrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Literal

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import diffsim.potentials as pot

matplotlib.use("Agg")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    system: Literal["ethanol", "malonaldehyde", "copper", "lj_cluster"] = "ethanol"
    n_configs: int = dataclasses.field(default=1500, metadata={"min": 10})
    dataset: str = dataclasses.field(
        default="", metadata={"help": "a dataset file (npz/extxyz); empty: the cached `system`"}
    )
    models: list[Literal["painn", "schnet"]] = dataclasses.field(
        default_factory=lambda: ["painn", "schnet"]
    )
    train_sizes: list[int] = dataclasses.field(
        default_factory=lambda: [50, 100, 250, 500, 1000], metadata={"min": 1}
    )
    n_val: int = dataclasses.field(default=100, metadata={"min": 1})
    n_test: int = dataclasses.field(default=300, metadata={"min": 1})
    cutoff: float = dataclasses.field(default=5.0, metadata={"min_exclusive": 0})
    features: int = dataclasses.field(default=32, metadata={"min": 1})
    layers: int = dataclasses.field(default=3, metadata={"min": 1})
    n_rbf: int = dataclasses.field(default=16, metadata={"min": 1})
    steps: int = dataclasses.field(default=5000, metadata={"min": 1})
    batch_size: int = dataclasses.field(default=16, metadata={"min": 1})
    lr: float = dataclasses.field(default=5e-3, metadata={"min_exclusive": 0})
    w_energy: float = dataclasses.field(default=1.0, metadata={"min": 0})
    w_forces: float = dataclasses.field(default=1.0, metadata={"min": 0})
    eval_every: int = dataclasses.field(default=200, metadata={"min": 1})
    patience: int = dataclasses.field(
        default=10, metadata={"min": 0, "help": "evaluations without improvement; 0 = off"}
    )
    export: Literal["painn", "schnet"] = "painn"
    float64: bool = False


def load_data(cfg: Config, run):
    if cfg.dataset:
        return pot.load_dataset(cfg.dataset)
    return pot.load_or_generate(
        cfg.system, cfg.n_configs, seed=cfg.seed, log=run.log, progress=not run.quiet
    )


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    data = load_data(cfg, run)
    sizes = sorted(set(cfg.train_sizes))
    pool = len(data) - cfg.n_val - cfg.n_test
    if pool < sizes[-1]:
        raise ValueError(
            f"train_sizes: the largest ({sizes[-1]}) exceeds the {pool} frames left for "
            f"training ({len(data)} - n_val {cfg.n_val} - n_test {cfg.n_test})"
        )
    train_pool, val, test = data.split(pool, cfg.n_val, cfg.n_test, seed=cfg.seed)
    run.log(f"data: {len(data)} frames of {len(data.numbers)} atoms; {data.info.get('method')}")
    dtype = jnp.float64 if cfg.float64 else jnp.float32
    elements = sorted(set(np.asarray(data.numbers).tolist()))

    results: dict[str, dict[int, dict]] = {m: {} for m in cfg.models}
    for name in cfg.models:
        for size in sizes:
            folder = run.path(f"train_{name}_{size}")
            done = folder / "result.json"
            if run.resume and done.exists():
                results[name][size] = json.loads(done.read_text())
                run.log(f"{name} n={size}: already trained, skipped")
                continue
            key = jax.random.fold_in(jax.random.key(cfg.seed), size)
            model = pot.make_model(
                name,
                elements,
                cutoff=cfg.cutoff,
                features=cfg.features,
                layers=cfg.layers,
                n_rbf=cfg.n_rbf,
                key=jax.random.fold_in(key, 0),
            )
            model = pot.astype(model, dtype)
            t0 = time.perf_counter()
            res = pot.train_potential(
                model,
                train_pool.subset(np.arange(size)),
                val,
                steps=cfg.steps,
                batch_size=min(cfg.batch_size, size),
                lr=cfg.lr,
                w_energy=cfg.w_energy,
                w_forces=cfg.w_forces,
                eval_every=cfg.eval_every,
                patience=cfg.patience,
                key=jax.random.fold_in(key, 1),
                directory=folder,
                resume=run.resume,
                checkpoint_every=cfg.eval_every,
                progress=not run.quiet,
                log_every=cfg.eval_every,
            )
            seconds = time.perf_counter() - t0
            scores = pot.evaluate(res.model, test)
            out = {
                "energy_mae": scores["energy_mae"],
                "force_mae": scores["force_mae"],
                "force_rmse": scores["force_rmse"],
                "best_step": res.best_step,
                "seconds": seconds,
                "parameters": _count(res.model),
            }
            pot.save_model(folder / "model.eqx", res.model, {"train_size": size})
            done.write_text(json.dumps(out))
            results[name][size] = out
            run.log(
                f"{name} n={size}: test energy MAE {out['energy_mae']:.3f} meV/atom, force MAE "
                f"{out['force_mae']:.2f} meV/A (best step {res.best_step}, {seconds:.0f} s)"
            )

    if cfg.export in results:
        best = pot.load_model(run.path(f"train_{cfg.export}_{sizes[-1]}") / "model.eqx")
        pot.save_model(run.path("model.eqx"), best, {"train_size": sizes[-1], "system": cfg.system})

    rows = ["| model | " + " | ".join(f"n = {s}" for s in sizes) + " |"]
    rows.append("| --- |" + " --- |" * len(sizes))
    for name in cfg.models:
        cells = [
            f"{results[name][s]['energy_mae']:.2f} / {results[name][s]['force_mae']:.1f}"
            for s in sizes
        ]
        rows.append(f"| {name} (E meV/atom / F meV/A) | " + " | ".join(cells) + " |")
    table = "\n".join(rows)
    run.path("learning_curve.md").write_text(table + "\n")
    run.log("learning curves (test set):\n" + table)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in cfg.models:
        for ax, k in zip(axes, ["energy_mae", "force_mae"]):
            ax.loglog(sizes, [results[name][s][k] for s in sizes], "o-", label=name)
    axes[0].set_ylabel("energy MAE (meV/atom)")
    axes[1].set_ylabel("force MAE (meV/Angstrom)")
    for ax in axes:
        ax.set_xlabel("training configurations")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{cfg.system}: test errors against training-set size")
    run.save_figure(fig, "learning_curve.png")

    metrics: dict = {"frames": len(data), "atoms": len(data.numbers)}
    for name in cfg.models:
        for s in sizes:
            metrics[f"{name}_n{s}_energy_mae"] = results[name][s]["energy_mae"]
            metrics[f"{name}_n{s}_force_mae"] = results[name][s]["force_mae"]
        metrics[f"{name}_parameters"] = results[name][sizes[-1]]["parameters"]
    if {"painn", "schnet"} <= set(cfg.models):
        ratios = [
            results["schnet"][s]["force_mae"] / results["painn"][s]["force_mae"] for s in sizes
        ]
        metrics["schnet_over_painn_force_mae"] = ratios
        metrics["painn_better_at_every_size"] = bool(all(r > 1 for r in ratios))
    return metrics


def _count(model) -> int:
    import equinox as eqx

    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    return int(sum(x.size for x in leaves))
