"""Regimes of the Nile's flow (1871-1970): a Gaussian HMM fitted by gradient ascent and by EM.

The annual flow of the Nile at Aswan (statsmodels' `nile` data set, 10^8 m^3 per year)
drops around 1898. A K-state HMM with Gaussian emissions is fitted twice from the same
starting point: by gradient ascent on the forward algorithm's log-likelihood (optax through
`diffsim.fit`; the gradient is backpropagation through the forward rollout), and by EM
(Baum-Welch, whose E-step is the forward-backward smoother). Both should reach the same
optimum; the experiment reports their final log-likelihoods and iteration counts, and
plots the series with the smoothed regime probabilities and the Viterbi regimes.
(`dataset = "sunspots"` runs the same on yearly sunspot numbers, 1700-2008.)
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import diffsim
from diffsim import messages as msg


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    dataset: Literal["nile", "sunspots"] = "nile"
    transform: Literal["none", "sqrt"] = "none"
    states: int = dataclasses.field(default=2, metadata={"min": 2, "max": 8})
    stay: float = dataclasses.field(
        default=0.9, metadata={"min": 0, "max_exclusive": 1, "help": "initial P(stay)"}
    )
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    lr: float = dataclasses.field(default=0.05, metadata={"min_exclusive": 0})
    ga_steps: int = dataclasses.field(default=200, metadata={"min": 1})
    em_iterations: int = dataclasses.field(default=500, metadata={"min": 1})
    tol: float = dataclasses.field(
        default=1e-6, metadata={"min_exclusive": 0, "help": "log-lik gap counted as converged"}
    )


def load_series(name):
    """Years and values of a statsmodels data set (shipped inside the PyPI package)."""
    import statsmodels.api as sm

    if name == "nile":
        d = sm.datasets.nile.load_pandas().data
        return d["year"].to_numpy(int), d["volume"].to_numpy(float), "flow (10^8 m^3 / year)"
    d = sm.datasets.sunspots.load_pandas().data
    return d["YEAR"].to_numpy(int), d["SUNACTIVITY"].to_numpy(float), "sunspot number"


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    years, raw, unit = load_series(cfg.dataset)
    values = np.sqrt(raw) if cfg.transform == "sqrt" else raw
    mu, sd = values.mean(), values.std()
    ys = jnp.asarray(((values - mu) / sd)[:, None])
    T, K = ys.shape[0], cfg.states
    # Start: means at evenly spaced quantiles, unit scales, sticky transitions.
    q = np.quantile(np.asarray(ys[:, 0]), (np.arange(K) + 0.5) / K)
    A0 = np.full((K, K), (1 - cfg.stay) / (K - 1)) + (cfg.stay - (1 - cfg.stay) / (K - 1)) * np.eye(
        K
    )
    init = msg.GaussianHMM.from_probs(np.ones(K) / K, A0, q[:, None], np.ones((K, 1)))
    # log p(raw values) = log p(standardised) - T log sd (and the sqrt Jacobian if used).
    jac = -T * np.log(sd) - (np.sum(np.log(2 * np.sqrt(raw))) if cfg.transform == "sqrt" else 0.0)

    # EM (Baum-Welch). The initial distribution stays fixed in both fits: from one
    # sequence its maximiser is one-hot, which logits only approach.
    bar = tqdm(total=cfg.em_iterations, desc="EM", leave=False, disable=run.quiet)
    em, em_lls = msg.hmm_em(
        init,
        ys,
        iterations=cfg.em_iterations,
        tol=0.0,
        learn_initial=False,
        callback=lambda i, ll: bar.update(1),
    )
    bar.close()

    def loss(model, batch, key):
        model = eqx.tree_at(
            lambda m: m.initial_logits, model, jax.lax.stop_gradient(model.initial_logits)
        )
        return -model.log_likelihood(ys) / T

    opt = optax.lbfgs() if cfg.optimizer == "lbfgs" else optax.adam(cfg.lr)
    res = diffsim.fit(
        loss,
        init,
        opt,
        steps=cfg.ga_steps,
        key=jax.random.key(cfg.seed),
        log_every=1,
        directory=run.dir / "gradient_ascent",
        resume=run.resume,
    )
    ga = res.params
    ga_lls = [-r["loss"] * T for r in res.history]  # before each update
    ga_final = float(ga.log_likelihood(ys))
    em_final = em_lls[-1]
    best = max(em_final, ga_final)

    def iterations_to(lls):
        hit = [i for i, v in enumerate(lls) if v >= best - cfg.tol]
        return hit[0] if hit else None

    path, _ = ga.viterbi(ys)
    post = ga.smoother(ys)
    order = np.argsort(np.asarray(ga.means[:, 0]))  # regimes numbered by their mean
    rank = np.empty(K, int)
    rank[order] = np.arange(K)
    regimes = rank[np.asarray(path)]
    em_path = rank[np.asarray(em.viterbi(ys)[0])]
    means = np.asarray(ga.means[order, 0]) * sd + mu
    scales = np.exp(np.asarray(ga.log_scales[order, 0])) * sd
    if cfg.transform == "sqrt":
        means = means**2
    changes = [int(years[t]) for t in range(1, T) if regimes[t] != regimes[t - 1]]
    metrics = {
        "T": T,
        "em_log_likelihood": em_final + jac,
        "ga_log_likelihood": ga_final + jac,
        "log_likelihood_gap": abs(em_final - ga_final),
        "em_iterations": iterations_to(em_lls),
        "ga_iterations": iterations_to(ga_lls + [ga_final]),
        "max_param_diff": float(
            max(
                jnp.abs(em.means - ga.means).max(),
                jnp.abs(em.log_scales - ga.log_scales).max(),
                jnp.abs(em.transition - ga.transition).max(),
            )
        ),
        "viterbi_paths_equal": bool((em_path == regimes).all()),
        "regime_means": [float(m) for m in means],
        "regime_scales": [float(s) for s in scales],
        "change_years": changes,
        "stay_probabilities": [float(p) for p in np.diag(np.asarray(ga.transition))[order]],
    }
    run.log(
        f"{cfg.dataset}: EM log-lik {metrics['em_log_likelihood']:.6f} "
        f"(converged to {cfg.tol} in {metrics['em_iterations']} iterations), gradient ascent "
        f"({cfg.optimizer}) {metrics['ga_log_likelihood']:.6f} (in {metrics['ga_iterations']}); "
        f"regime means {np.round(means, 1)}; changes in {changes}"
    )

    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(9, 6.5), height_ratios=[2, 1])
    ax0.plot(years, raw, "k.-", lw=0.8, ms=3, label="data")
    ax0.step(years, means[regimes], "C3-", where="mid", lw=2, label="Viterbi regime mean")
    ax0.set_ylabel(unit)
    ax0.set_xlabel("year")
    axp = ax0.twinx()
    high = np.asarray(post.marginals[:, order[-1]])
    axp.fill_between(years, 0, high, color="C0", alpha=0.15, step="mid")
    axp.set_ylabel("P(highest regime | data)")
    axp.set_ylim(0, 1)
    ax0.legend(loc="upper right", fontsize=8)
    ax0.set_title(f"{cfg.dataset}: {K}-state Gaussian HMM")
    ax1.plot(np.arange(len(em_lls)), np.asarray(em_lls) + jac, "C0-", label="EM")
    ax1.plot(
        np.arange(len(ga_lls)),
        np.asarray(ga_lls) + jac,
        "C1-",
        label=f"gradient ascent ({cfg.optimizer})",
    )
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("log-likelihood (nats)")
    lo = min(min(em_lls), min(ga_lls)) + jac
    ax1.set_ylim(lo, best + jac + 0.1 * (best + jac - lo) + 1e-9)
    ax1.legend(fontsize=8)
    run.save_figure(fig, "regimes.png")
    return metrics
