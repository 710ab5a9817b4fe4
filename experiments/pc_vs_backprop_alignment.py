"""Predictive coding's weight updates against backprop's gradient: alignment vs inference.

An MLP on a batch of scikit-learn's 8x8 digits (float64). For each inference rate and
number of inference iterations, the local Hebbian updates of a predictive coding network
(Whittington & Bogacz 2017) are compared with `jax.grad` of the same loss of the same
equinox MLP: cosine similarity and relative error. At convergence (`UntilConverged`)
the gap that remains shrinks in proportion to the output precision pi (the weight of
the output error in the energy: Whittington & Bogacz's limit).
The fixed-prediction (Millidge et al. 2022) and zero-divergence (Song et al. 2020)
variants equal backprop to rounding; feedback alignment and DFA are shown for contrast.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from diffsim import neuro

from ._pc_common import load_digits


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    hidden: list[int] = dataclasses.field(default_factory=lambda: [64, 64])
    batch: int = dataclasses.field(default=256, metadata={"min": 1, "max": 1797})
    iterations: list[int] = dataclasses.field(
        default_factory=lambda: [0, 1, 2, 3, 5, 8, 13, 20, 32, 50, 80, 128, 200]
    )
    rates: list[float] = dataclasses.field(default_factory=lambda: [0.02, 0.05, 0.1, 0.2, 0.4])
    precisions: list[float] = dataclasses.field(
        default_factory=lambda: [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001]
    )
    converge_rate: float = dataclasses.field(default=0.1, metadata={"min_exclusive": 0})
    tol: float = dataclasses.field(default=1e-10, metadata={"min_exclusive": 0})

    def __post_init__(self):
        if sorted(set(self.iterations)) != list(self.iterations) or min(self.iterations) < 0:
            raise ValueError(f"key 'iterations' must be increasing and >= 0: {self.iterations}")
        if not self.rates or min(self.rates) <= 0:
            raise ValueError(f"key 'rates' must be positive: {self.rates}")
        if not self.precisions or min(self.precisions) <= 0:
            raise ValueError(f"key 'precisions' must be positive: {self.precisions}")


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    x_all, labels = load_digits()
    rng = np.random.default_rng(cfg.seed)
    idx = rng.choice(len(labels), cfg.batch, replace=False)
    x = jnp.asarray(x_all[idx])
    y = jax.nn.one_hot(jnp.asarray(labels[idx]), 10, dtype=x.dtype)
    k_net, k_fb = jax.random.split(jax.random.key(cfg.seed))
    net = neuro.MLP([64, *cfg.hidden, 10], key=k_net, dtype=x.dtype)
    bp = jax.grad(neuro.mse_loss)(net, x, y)

    def compare(g, ref=bp):
        return float(neuro.cosine_similarity(g, ref)), float(neuro.relative_error(g, ref))

    metrics: dict = {}
    # The exact variants.
    for name, rule in [
        ("fixed_prediction", neuro.FixedPredictionPC()),
        ("zero_divergence", neuro.ZeroDivergencePC()),
    ]:
        cos, rel = compare(neuro.rule_gradients(rule, net, x, y))
        metrics[f"{name}_rel_error"] = rel
        run.log(f"{name}: relative error to jax.grad {rel:.2e}, cosine {cos:.15f}")
    for name, rule in [
        ("fa", neuro.FeedbackAlignment(net, key=k_fb)),
        ("dfa", neuro.DirectFeedbackAlignment(net, key=k_fb)),
    ]:
        metrics[f"{name}_cosine"], metrics[f"{name}_rel_error"] = compare(
            neuro.rule_gradients(rule, net, x, y)
        )

    # PC with a fixed number of iterations: one compilation per count, vmapped over rates.
    rates = jnp.asarray(cfg.rates)
    cos = np.zeros((len(cfg.rates), len(cfg.iterations)))
    rel = np.zeros_like(cos)
    for j, n in enumerate(tqdm(cfg.iterations, desc="iterations", leave=False, disable=run.quiet)):

        def measure(rate, n=n):
            g = neuro.rule_gradients(
                neuro.PredictiveCoding(rate, neuro.FixedIterations(n)), net, x, y
            )
            return neuro.cosine_similarity(g, bp), neuro.relative_error(g, bp)

        c, r = jax.jit(jax.vmap(measure))(rates)
        cos[:, j], rel[:, j] = np.asarray(c), np.asarray(r)
    # To convergence, for every rate: the same fixed point, reached in ~1/rate iterations.
    conv_iters = []
    until = neuro.UntilConverged(cfg.tol, 100_000)
    for rate in tqdm(cfg.rates, desc="to convergence", leave=False, disable=run.quiet):
        s = neuro.infer(net, x, y, rate=jnp.asarray(rate), inference=until)
        conv_iters.append(int(s.iterations))
    converged = neuro.PredictiveCoding(jnp.asarray(cfg.converge_rate), until)
    conv_cos, conv_rel = compare(neuro.rule_gradients(converged, net, x, y))
    # At convergence, against the output precision pi.
    prec_cos, prec_rel = [], []
    for pi in tqdm(cfg.precisions, desc="precisions", leave=False, disable=run.quiet):
        rule = dataclasses.replace(converged, output_precision=jnp.asarray(pi))
        c, r = compare(neuro.rule_gradients(rule, net, x, y))
        prec_cos.append(c)
        prec_rel.append(r)
    small = [i for i, b in enumerate(cfg.precisions) if b <= 0.1]
    slope = float("nan")
    if len(small) >= 2:
        pis, rels = np.log(cfg.precisions)[small], np.log(prec_rel)[small]
        slope = float(np.polyfit(pis, rels, 1)[0])

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    its = np.asarray(cfg.iterations)
    xs = np.maximum(its, 0.5)  # n = 0 drawn at 0.5 on the log axis
    for i, rate in enumerate(cfg.rates):
        axes[0].plot(xs, cos[i], "o-", ms=3, label=f"rate {rate:g}")
        axes[1].plot(xs, rel[i], "o-", ms=3, label=f"rate {rate:g}")
    for ax, value in [(axes[0], conv_cos), (axes[1], conv_rel)]:
        ax.axhline(value, color="k", ls="--", lw=1, label="converged (any rate)")
        ax.set_xscale("log")
        ax.set_xlabel("inference iterations (n = 0 drawn at 0.5)")
        ax.grid(alpha=0.3)
    axes[0].axhline(metrics["fa_cosine"], color="tab:gray", ls=":", label="feedback alignment")
    axes[0].axhline(metrics["dfa_cosine"], color="tab:brown", ls=":", label="direct FA")
    axes[0].set(ylabel="cosine(PC update, backprop gradient) (1)", title="alignment")
    axes[1].set(ylabel="||PC - BP|| / ||BP|| (1)", title="relative error")
    axes[0].legend(fontsize=8)
    ax = axes[2]
    ax.loglog(cfg.precisions, prec_rel, "o-", label="relative error")
    ax.loglog(cfg.precisions, 1 - np.asarray(prec_cos), "s-", label="1 - cosine")
    ax.set(
        xlabel="output precision pi (1)",
        ylabel="gap to backprop at convergence (1)",
        title=f"converged PC vs output precision (slope {slope:.2f})",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    run.save_figure(fig, "alignment.png")
    plt.close(fig)

    for i, rate in enumerate(cfg.rates):
        metrics[f"rate_{rate:g}.cosine"] = cos[i].tolist()
        metrics[f"rate_{rate:g}.rel_error"] = rel[i].tolist()
        metrics[f"rate_{rate:g}.iterations_to_converge"] = conv_iters[i]
    metrics.update(
        iterations=list(cfg.iterations),
        converged_cosine=conv_cos,
        converged_rel_error=conv_rel,
        precision_cosine=prec_cos,
        precision_rel_error=prec_rel,
        precision_slope=slope,
        # trends: the error never grows with iterations; at a fixed count, shrinks with rate
        rel_error_monotone_in_iterations=bool(np.all(np.diff(rel, axis=1) <= 1e-12)),
        cosine_gain_over_iterations=float(np.min(cos[:, -1] - cos[:, 0])),
        rel_error_monotone_in_rate_at_8=bool(
            np.all(np.diff(rel[:, cfg.iterations.index(8)]) < 0) if 8 in cfg.iterations else False
        ),
        cosine_monotone_in_rate_at_8=bool(
            np.all(np.diff(cos[:, cfg.iterations.index(8)]) > 0) if 8 in cfg.iterations else False
        ),
    )
    run.log(
        f"converged PC: cosine {conv_cos:.4f}, relative error {conv_rel:.3f}; "
        f"precision {cfg.precisions[-1]}: relative error {prec_rel[-1]:.2e} (slope {slope:.2f})"
    )
    return metrics
