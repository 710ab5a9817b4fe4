"""HMM marginals from backprop equal forward-backward's: error against T, up to 100,000 steps.

The forward algorithm's log-likelihood log Z is one `diffsim.rollout`. Its gradient with
respect to the log-potentials is the matrix of smoothed marginals p(z_t | y), with respect
to per-step log transition matrices the pairwise marginals, and the gradient of the
max-product (tropical) forward pass is the Viterbi path. This experiment measures, for a
random HMM whose transition matrix has exact zeros, the largest difference between the
marginals from the explicit forward-backward recursion and those from `jax.grad` (under
every exact rollout gradient strategy) as T grows, checks both against brute-force
enumeration of all K^T paths on a tiny model, counts Viterbi disagreements and NaNs, and
compares the parallel (associative-scan) smoother with the sequential one.
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np

import diffsim
from diffsim import messages as msg

STRATEGIES = {
    "bptt": lambda: diffsim.BPTT(),
    "checkpointed": lambda: diffsim.Checkpointed(),
    "discrete_adjoint": lambda: diffsim.DiscreteAdjoint(),
}


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    states: int = dataclasses.field(default=5, metadata={"min": 2, "max": 64})
    lengths: list[int] = dataclasses.field(default_factory=lambda: [10, 100, 1000, 10_000, 100_000])
    zero_fraction: float = dataclasses.field(
        default=0.3, metadata={"min": 0, "max": 0.8, "help": "off-diagonal transitions set to 0"}
    )
    separation: float = dataclasses.field(
        default=1.5, metadata={"min": 0, "help": "distance between emission means (noise sd 1)"}
    )
    strategies: list[str] = dataclasses.field(
        default_factory=lambda: ["bptt", "checkpointed", "discrete_adjoint"]
    )
    brute_force_length: int = dataclasses.field(default=6, metadata={"min": 2, "max": 9})

    def __post_init__(self):
        if not self.lengths or min(self.lengths) < 2:
            raise ValueError(f"key 'lengths' must be a non-empty list of ints >= 2: {self.lengths}")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad or not self.strategies:
            raise ValueError(f"key 'strategies': unknown {bad}; allowed {sorted(STRATEGIES)}")


def random_model(key, K, zero_fraction, separation):
    """A random sticky HMM whose transition matrix has exact zeros off the diagonal."""
    ka, kz, ki = jax.random.split(key, 3)
    A = jax.random.dirichlet(ka, jnp.ones(K), (K,)) + 3.0 * jnp.eye(K)
    zero = (jax.random.uniform(kz, (K, K)) < zero_fraction) & ~jnp.eye(K, dtype=bool)
    A = jnp.where(zero, 0.0, A)
    A = A / A.sum(axis=1, keepdims=True)
    pi = jax.random.dirichlet(ki, jnp.ones(K))
    means = separation * jnp.arange(K, dtype=A.dtype)[:, None]
    return msg.GaussianHMM.from_probs(pi, A, means, jnp.ones((K, 1), A.dtype))


def brute_force(pi, A, lp):
    """log Z, marginals, pairwise marginals and the best path by enumerating every path."""
    pi, A, lp = (np.asarray(x) for x in (pi, A, lp))
    T, K = lp.shape
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    with np.errstate(divide="ignore"):
        lw = np.log(pi[paths[:, 0]]) + lp[np.arange(T), paths].sum(axis=1)
        lw = lw + np.log(A[paths[:, :-1], paths[:, 1:]]).sum(axis=1)
    logz = np.logaddexp.reduce(lw)
    w = np.exp(lw - logz)
    marg = np.zeros((T, K))
    pair = np.zeros((T - 1, K, K))
    for t in range(T):
        np.add.at(marg[t], paths[:, t], w)
    for t in range(T - 1):
        np.add.at(pair[t], (paths[:, t], paths[:, t + 1]), w)
    return logz, marg, pair, paths[np.argmax(lw)], lw.max()


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    key = jax.random.key(cfg.seed)
    kmodel, ksample, ktiny = jax.random.split(key, 3)
    model = random_model(kmodel, cfg.states, cfg.zero_fraction, cfg.separation)
    pi, A = model.initial, model.transition
    metrics: dict = {"transition_zeros": int(jnp.sum(A == 0))}

    # Brute force on a tiny model (3 states) with zeros in its transition matrix.
    tiny = random_model(ktiny, 3, 0.5, cfg.separation)
    _, ys_tiny = tiny.sample(ksample, cfg.brute_force_length)
    lp_tiny = tiny.log_potentials(ys_tiny)
    logz, marg, pair, best, best_score = brute_force(tiny.initial, tiny.transition, lp_tiny)
    fb = msg.hmm_smoother(tiny.initial, tiny.transition, lp_tiny, pairwise=True)
    gr = msg.hmm_posterior_by_grad(tiny.initial, tiny.transition, lp_tiny, pairwise=True)
    path_bt, _ = msg.hmm_viterbi(tiny.initial, tiny.transition, lp_tiny)
    path_gr, score = msg.hmm_viterbi_by_grad(tiny.initial, tiny.transition, lp_tiny)
    metrics["brute_force"] = {
        "paths": 3**cfg.brute_force_length,
        "log_z_error": float(max(abs(fb.log_likelihood - logz), abs(gr.log_likelihood - logz))),
        "marginals_error_forward_backward": float(np.abs(fb.marginals - marg).max()),
        "marginals_error_grad": float(np.abs(gr.marginals - marg).max()),
        "pairwise_error_forward_backward": float(np.abs(fb.pairwise - pair).max()),
        "pairwise_error_grad": float(np.abs(gr.pairwise - pair).max()),
        "viterbi_backtrack_equal": bool((np.asarray(path_bt) == best).all()),
        "viterbi_grad_equal": bool((np.asarray(path_gr) == best).all()),
        "viterbi_score_error": float(abs(score - best_score)),
    }
    run.log(f"brute force over {3**cfg.brute_force_length} paths: {metrics['brute_force']}")

    smoother = jax.jit(lambda lp: msg.hmm_smoother(pi, A, lp, pairwise=True))
    parallel = jax.jit(lambda lp: msg.parallel_hmm_smoother(pi, A, lp))
    by_grad = {
        name: jax.jit(
            lambda lp, g=STRATEGIES[name](): msg.hmm_posterior_by_grad(
                pi, A, lp, pairwise=True, grad=g
            )
        )
        for name in cfg.strategies
    }
    viterbi = jax.jit(lambda lp: msg.hmm_viterbi(pi, A, lp))
    viterbi_grad = jax.jit(lambda lp: msg.hmm_viterbi_by_grad(pi, A, lp))

    rows = []
    for T in tqdm(cfg.lengths, desc="lengths", leave=False, disable=run.quiet):
        _, ys = model.sample(jax.random.fold_in(ksample, T), T)
        lp = model.log_potentials(ys)
        fb = smoother(lp)
        row = {"T": T, "log_likelihood": float(fb.log_likelihood)}
        nans = int(jnp.isnan(fb.marginals).sum() + jnp.isnan(fb.pairwise).sum())
        for name, f in by_grad.items():
            gr = f(lp)
            nans += int(jnp.isnan(gr.marginals).sum() + jnp.isnan(gr.pairwise).sum())
            row[f"marginals_error_{name}"] = float(jnp.abs(gr.marginals - fb.marginals).max())
            row[f"pairwise_error_{name}"] = float(jnp.abs(gr.pairwise - fb.pairwise).max())
        par = parallel(lp)
        row["parallel_marginals_error"] = float(jnp.abs(par.marginals - fb.marginals).max())
        row["parallel_log_likelihood_rel_error"] = float(
            abs(par.log_likelihood - fb.log_likelihood) / abs(fb.log_likelihood)
        )
        p1, s1 = viterbi(lp)
        p2, s2 = viterbi_grad(lp)
        row["viterbi_disagreements"] = int(jnp.sum(p1 != p2))
        row["viterbi_score_error"] = float(abs(s1 - s2))
        row["nans"] = nans
        rows.append(row)
        run.log(
            f"T={T}: max |grad - forward-backward| marginals "
            + ", ".join(f"{n} {row[f'marginals_error_{n}']:.2e}" for n in cfg.strategies)
            + f"; parallel {row['parallel_marginals_error']:.2e}; "
            f"Viterbi disagreements {row['viterbi_disagreements']}; NaNs {nans}"
        )

    metrics["rows"] = rows
    metrics["max_marginals_error"] = max(
        r[f"marginals_error_{n}"] for r in rows for n in cfg.strategies
    )
    metrics["max_pairwise_error"] = max(
        r[f"pairwise_error_{n}"] for r in rows for n in cfg.strategies
    )
    metrics["max_parallel_error"] = max(r["parallel_marginals_error"] for r in rows)
    metrics["viterbi_disagreements"] = sum(r["viterbi_disagreements"] for r in rows)
    metrics["nans"] = sum(r["nans"] for r in rows)

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    Ts = [r["T"] for r in rows]
    for name in cfg.strategies:
        ax.loglog(
            Ts,
            [max(r[f"marginals_error_{name}"], 1e-18) for r in rows],
            "o-",
            label=f"grad marginals ({name})",
        )
        ax.loglog(
            Ts,
            [max(r[f"pairwise_error_{name}"], 1e-18) for r in rows],
            "x--",
            label=f"grad pairwise ({name})",
        )
    ax.loglog(
        Ts,
        [max(r["parallel_marginals_error"], 1e-18) for r in rows],
        "s:",
        label="parallel smoother",
    )
    ax.set_xlabel("sequence length T (steps)")
    ax.set_ylabel("max |difference| from forward-backward (probability)")
    ax.set_title(f"HMM, K = {cfg.states}, {metrics['transition_zeros']} zero transitions")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    run.save_figure(fig, "identity_error.png")
    return metrics
