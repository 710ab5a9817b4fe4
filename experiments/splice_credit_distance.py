"""How far back BPTT's credit reaches in RNN / GRU / LSTM, and what truncation removes.

The synthetic branch-point task (`diffsim.sequence.branch_point_task`): an acceptor AG is
used (label 1) when a branch-point motif sits `distance` nt upstream, and not (label 0)
when a decoy sits there; the nucleotides between are random, so a model predicting at
the AG must carry one bit across the whole gap. For each cell the experiment measures

1. the credit |d loss / d x_{t-d}| against the distance d at initialisation (how far back
   the learning signal reaches): exponential decay for the vanilla RNN, slow for the
   chrono-initialised GRU and LSTM; exactly zero beyond the window for `Truncated(k)`;
2. the test accuracy after training on each dependency length: the vanilla RNN collapses
   to chance beyond a short distance while GRU and LSTM hold; a GRU trained with
   truncated BPTT (window k) cannot learn any dependency longer than k.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import diffsim
from diffsim import sequence as sq

from ._sequence_common import front_pad, predict, train


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = False
    cells: list[str] = dataclasses.field(default_factory=lambda: ["rnn", "gru", "lstm"])
    hidden: int = dataclasses.field(default=16, metadata={"min": 1})
    timescale: float = dataclasses.field(
        default=200.0, metadata={"min_exclusive": 2, "help": "chrono init of GRU/LSTM gates"}
    )
    distances: list[int] = dataclasses.field(default_factory=lambda: [2, 5, 10, 20, 50, 100])
    truncated_cell: str = "gru"
    truncated_windows: list[int] = dataclasses.field(default_factory=lambda: [16])
    steps: int = dataclasses.field(default=400, metadata={"min": 1})
    batch: int = dataclasses.field(default=64, metadata={"min": 1})
    lr: float = dataclasses.field(default=3e-3, metadata={"min_exclusive": 0})
    test_size: int = dataclasses.field(default=1000, metadata={"min": 10})
    credit_distance: int = dataclasses.field(
        default=100, metadata={"min": 10, "help": "gap of the sequences the credit is read on"}
    )
    credit_batch: int = dataclasses.field(default=32, metadata={"min": 1})
    learned: float = dataclasses.field(
        default=0.9, metadata={"min": 0.5, "max": 1, "help": "accuracy counted as learned"}
    )


def validate(cfg: Config) -> None:
    for c in [*cfg.cells, cfg.truncated_cell]:
        if c not in ("rnn", "gru", "lstm"):
            raise ValueError(f"cells: {c!r} is not one of rnn, gru, lstm")
    if not cfg.distances or min(cfg.distances) < 0:
        raise ValueError(f"distances: need at least one distance >= 0, got {cfg.distances}")
    if any(k < 1 for k in cfg.truncated_windows):
        raise ValueError(f"truncated_windows: windows must be >= 1, got {cfg.truncated_windows}")


def _model(cfg, kind, key, grad=diffsim.BPTT()):
    ts = None if kind == "rnn" else cfg.timescale
    layers = sq.recurrent_layers(kind, cfg.hidden, grad=grad, timescale=ts, key=key)
    return sq.SequenceClassifier(layers, 2, key=jax.random.fold_in(key, 1))


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    dtype = jnp.float64 if cfg.float64 else jnp.float32
    key = jax.random.key(cfg.seed)
    k_model, k_data, k_test = jax.random.split(key, 3)

    # 1. Credit against distance, at initialisation.
    xs, labels, truth = sq.branch_point_task(k_data, cfg.credit_batch, cfg.credit_distance)
    xs = xs.astype(dtype)
    variants = [(c, c, diffsim.BPTT(), 1) for c in cfg.cells] + [
        (f"{cfg.truncated_cell} Truncated({k})", cfg.truncated_cell, diffsim.Truncated(k), k)
        for k in cfg.truncated_windows
    ]
    credit, rates = {}, {}
    for name, kind, grad, k in variants:
        model = jax.tree.map(
            lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a,
            _model(cfg, kind, k_model, grad),
        )
        pxs, mask = front_pad(xs, k)

        def loss_one(x, model=model, m=mask[0], y=labels[0]):
            # The label's value changes the credit's scale, not its decay; one label for all.
            return sq.cross_entropy(model(x, m)[None], y[None])

        c = sq.credit_by_distance(loss_one, pxs)[: xs.shape[1]]
        credit[name] = np.asarray(c, float)
        if k == 1:
            rates[name], r2 = sq.decay_rate(credit[name], 1, min(41, len(c)))
            run.log(f"credit {name}: factor {rates[name]:.3f} per nt (R^2 {r2:.3f})")
    dep = truth["dependency"]
    credit_at_dep = {n: float(c[dep]) for n, c in credit.items()}

    # 2. Accuracy against dependency length.
    acc: dict[str, dict[int, float]] = {}
    for name, kind, grad, k in variants:
        acc[name] = {}
        for d in cfg.distances:

            def batch_fn(bkey, step, d=d, k=k):
                bx, by, _ = sq.branch_point_task(bkey, cfg.batch, d)
                bx, bm = front_pad(bx.astype(dtype), k)
                return bx, bm, by

            model = _model(cfg, kind, jax.random.fold_in(k_model, d), grad)
            model = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, model)
            tag = name.replace(" ", "_").replace("(", "").replace(")", "")
            model, _ = train(
                model,
                batch_fn,
                steps=cfg.steps,
                lr=cfg.lr,
                key=jax.random.fold_in(k_data, d),
                directory=run.dir / f"train_{tag}_d{d}",
                resume=run.resume,
            )
            tx, ty, tt = sq.branch_point_task(jax.random.fold_in(k_test, d), cfg.test_size, d)
            tx, tm = front_pad(tx.astype(dtype), k)
            a = float(jnp.mean(jnp.argmax(predict(model, tx, tm), -1) == ty))
            acc[name][tt["dependency"]] = a
            run.log(f"{name}: dependency {tt['dependency']} nt -> test accuracy {a:.3f}")

    reach = {
        n: max([dd for dd, a in v.items() if a >= cfg.learned], default=0) for n, v in acc.items()
    }
    fails = {
        n: min([dd for dd, a in v.items() if a < cfg.learned], default=None) for n, v in acc.items()
    }

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, c in credit.items():
        d = np.arange(len(c))
        ax0.semilogy(d[c > 0], c[c > 0], label=name)
    ax0.axvline(dep, color="k", ls=":", lw=1, label="branch point")
    ax0.set_xlabel("distance d before the prediction (nt)")
    ax0.set_ylabel("|d loss / d x_(t-d)| (per one-hot input, mean)")
    ax0.set_title("credit at initialisation")
    ax0.legend(fontsize=8)
    for name, v in acc.items():
        ds = sorted(v)
        ax1.plot(ds, [v[d] for d in ds], "o-", label=name)
    ax1.axhline(0.5, color="k", ls=":", lw=1)
    ax1.set_xscale("log")
    ax1.set_xlabel("dependency length (nt)")
    ax1.set_ylabel("test accuracy (fraction)")
    ax1.set_ylim(0.4, 1.02)
    ax1.legend(fontsize=8)
    ax1.set_title(f"after {cfg.steps} Adam steps")
    run.save_figure(fig, "credit_distance.png")
    np.savez(run.path("credit.npz"), **{n.replace(" ", "_"): c for n, c in credit.items()})
    return {
        "credit_decay_factor": rates,
        "credit_at_dependency": credit_at_dep,
        "credit_dependency": dep,
        "accuracy": {n: {str(d): a for d, a in v.items()} for n, v in acc.items()},
        "longest_learned": reach,
        "shortest_failed": fails,
    }
