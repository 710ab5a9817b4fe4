"""Per-nucleotide splice sites (donor / acceptor / neither) on human genes, held-out genes.

EMBL records of human genes from Debian's `emboss-test` package (2.69 Mbp; introns from
their mRNA / CDS joins and intron features, 98% GT...AG) are cut into gene loci on their
own strand; whole loci go to training or test (split by gene). A convolution + bidirectional
GRU labels every nucleotide of windows thousands of nt long (BPTT through the whole
window, or `Checkpointed` for O(sqrt T) memory), trained with class weights for the rare
sites. It is scored as SpliceAI is -- top-k accuracy and PR-AUC per class over every
position of the held-out genes -- against position weight matrices of the donor (-3..+6)
and acceptor (-20..+3) estimated on the training genes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import diffsim
from diffsim import sequence as sq

from ._sequence_common import train

GRADS = {"bptt": diffsim.BPTT(), "checkpointed": diffsim.Checkpointed()}


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = False
    path: str = str(sq.EMBOSS_HUMAN)
    flank: int = dataclasses.field(default=300, metadata={"min": 0})
    test_fraction: float = dataclasses.field(
        default=0.25, metadata={"min_exclusive": 0, "max_exclusive": 1}
    )
    window: int = dataclasses.field(default=2000, metadata={"min": 50})
    kind: str = "gru"
    hidden: int = dataclasses.field(default=32, metadata={"min": 1})
    conv_width: int = dataclasses.field(default=11, metadata={"min": 0})
    conv_channels: int = dataclasses.field(default=32, metadata={"min": 1})
    grad: str = "bptt"
    steps: int = dataclasses.field(default=800, metadata={"min": 1})
    batch: int = dataclasses.field(default=8, metadata={"min": 1})
    lr: float = dataclasses.field(default=3e-3, metadata={"min_exclusive": 0})
    site_weight: float = dataclasses.field(default=30.0, metadata={"min_exclusive": 0})
    max_loci: int = dataclasses.field(default=0, metadata={"min": 0, "help": "0: all"})


def validate(cfg: Config) -> None:
    if not Path(cfg.path).exists():
        raise ValueError(
            f"path: {cfg.path} does not exist (Debian: apt-get install emboss-test puts the "
            "EMBL records of human genes there)"
        )
    if cfg.kind not in ("rnn", "gru", "lstm"):
        raise ValueError(f"kind: {cfg.kind!r} is not one of rnn, gru, lstm")
    if cfg.grad not in GRADS:
        raise ValueError(f"grad: {cfg.grad!r} is not one of {sorted(GRADS)}")
    if cfg.conv_width and cfg.conv_width % 2 == 0:
        raise ValueError(f"conv_width: must be odd or 0, got {cfg.conv_width}")


def split_loci(cfg):
    loci = sq.genomic_loci(sq.read_embl(cfg.path), flank=cfg.flank)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(loci))
    if cfg.max_loci:
        order = order[: cfg.max_loci]
    n_test = max(1, round(cfg.test_fraction * len(order)))
    return [loci[i] for i in order[n_test:]], [loci[i] for i in order[:n_test]]


def cut(loci, window):
    xs, labels, masks = [], [], []
    for locus in loci:
        x, m = sq.windows(sq.one_hot(locus.sequence), window, pad=True)
        y, _ = sq.windows(locus.labels.astype(np.int32), window, pad=True)
        xs.append(x), labels.append(y), masks.append(m)
    return np.concatenate(xs), np.concatenate(masks), np.concatenate(labels)


def site_windows(loci, cls, before, after):
    out = []
    for locus in loci:
        x = sq.one_hot(locus.sequence)
        for i in np.flatnonzero(locus.labels == cls):
            if i - before >= 0 and i + after < len(x):
                out.append(x[i - before : i + after + 1])
    return np.stack(out)


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    train_loci, test_loci = split_loci(cfg)
    X, M, Y = cut(train_loci, cfg.window)
    TX, TM, TY = cut(test_loci, cfg.window)
    count = {
        "train_loci": len(train_loci),
        "test_loci": len(test_loci),
        "train_nt": int(M.sum()),
        "test_nt": int(TM.sum()),
        "train_sites": [int((Y[M] == c).sum()) for c in (1, 2)],
        "test_sites": [int((TY[TM] == c).sum()) for c in (1, 2)],
    }
    run.log(f"data: {count}")

    key = jax.random.key(cfg.seed)
    layers = sq.recurrent_layers(
        cfg.kind,
        cfg.hidden,
        bidirectional=True,
        conv_width=cfg.conv_width,
        conv_channels=cfg.conv_channels,
        grad=GRADS[cfg.grad],
        timescale=None if cfg.kind == "rnn" else float(cfg.window),
        key=key,
    )
    model = sq.PositionClassifier(layers, 3, key=jax.random.fold_in(key, 1))
    Xj, Mj, Yj = jnp.asarray(X), jnp.asarray(M), jnp.asarray(Y)

    def batch_fn(bkey, step):
        i = jax.random.randint(bkey, (cfg.batch,), 0, Xj.shape[0])
        return Xj[i], Mj[i], Yj[i]

    weights = jnp.asarray([1.0, cfg.site_weight, cfg.site_weight])
    model, history = train(
        model,
        batch_fn,
        steps=cfg.steps,
        lr=cfg.lr,
        key=jax.random.fold_in(key, 2),
        directory=run.dir / "train",
        resume=run.resume,
        weights=weights,
    )

    f = eqx.filter_jit(jax.vmap(lambda x, m: jax.nn.softmax(model(x, m), -1)))
    probs = np.concatenate(
        [np.asarray(f(TX[i : i + 8], TM[i : i + 8])) for i in range(0, len(TX), 8)]
    )
    probs, truth = probs[TM], TY[TM]

    # PWM baselines from the training genes' sites.
    pwms = {
        sq.DONOR: sq.PWM.from_sites(site_windows(train_loci, sq.DONOR, 3, 6), 3),
        sq.ACCEPTOR: sq.PWM.from_sites(site_windows(train_loci, sq.ACCEPTOR, 20, 3), 20),
    }
    score = eqx.filter_jit(lambda pwm, x: jax.vmap(pwm.score)(x))
    pwm_scores = {}
    for c, pwm in pwms.items():
        chunks = [np.asarray(score(pwm, jnp.asarray(TX[i : i + 8]))) for i in range(0, len(TX), 8)]
        pwm_scores[c] = np.concatenate(chunks)[TM]

    metrics: dict = {"data": count}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, c in zip(axes, (sq.ACCEPTOR, sq.DONOR)):
        name = sq.SITE_CLASSES[c]
        pos = truth == c
        rnn_ap = sq.average_precision(probs[:, c], pos)
        pwm_ap = sq.average_precision(pwm_scores[c], pos)
        metrics[name] = {
            "pr_auc": rnn_ap,
            "top_k": sq.top_k_accuracy(probs[:, c], pos),
            "pwm_pr_auc": pwm_ap,
            "pwm_top_k": sq.top_k_accuracy(pwm_scores[c], pos),
            "sites": int(pos.sum()),
        }
        run.log(f"{name}: {metrics[name]}")
        for s, label in [
            (probs[:, c], f"{cfg.kind.upper()} (AP {rnn_ap:.3f})"),
            (pwm_scores[c], f"PWM (AP {pwm_ap:.3f})"),
        ]:
            order = np.argsort(-s, kind="stable")
            tp = np.cumsum(pos[order])
            prec, rec = tp / np.arange(1, len(tp) + 1), tp / pos.sum()
            ax.plot(rec, prec, label=label)
        ax.set_xlabel("recall (fraction of true sites)")
        ax.set_ylabel("precision (fraction of calls)")
        ax.set_title(f"{name}: {int(pos.sum())} sites, {len(truth)} nt of held-out genes")
        ax.legend(fontsize=8)
    run.save_figure(fig, "pr_curves.png")
    metrics["final_loss"] = history[-1]["loss"] if history else None
    return metrics
