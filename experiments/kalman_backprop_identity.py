"""Kalman smoother means from backprop through the filter equal the RTS smoother's.

For a linear-Gaussian state-space model with an additive input u_t in the dynamics,
Fisher's identity gives dL/du_t = Q^{-1}(E[x_t | y] - F E[x_{t-1} | y] - u_t) for the
filter's log-likelihood L (P_0 in place of Q at t = 0), so the smoothed means are the
dynamics driven by Q dL/du_t: backpropagation through the Kalman filter alone does the
work of the Rauch-Tung-Striebel backward pass. This experiment measures the difference
between the two (under each exact rollout gradient strategy) against T, checks both
against dense Gaussian conditioning on a short sequence, checks the observation identity
H E[x_t | y] = y_t + R dL/dy_t, and compares the parallel (associative-scan) smoother.
"""

from __future__ import annotations

import dataclasses

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
    state_dim: int = dataclasses.field(default=4, metadata={"min": 1, "max": 64})
    obs_dim: int = dataclasses.field(default=2, metadata={"min": 1, "max": 64})
    lengths: list[int] = dataclasses.field(default_factory=lambda: [10, 100, 1000, 10_000])
    strategies: list[str] = dataclasses.field(
        default_factory=lambda: ["bptt", "checkpointed", "discrete_adjoint"]
    )
    dense_length: int = dataclasses.field(default=8, metadata={"min": 2, "max": 200})

    def __post_init__(self):
        if not self.lengths or min(self.lengths) < 2:
            raise ValueError(f"key 'lengths' must be a non-empty list of ints >= 2: {self.lengths}")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad or not self.strategies:
            raise ValueError(f"key 'strategies': unknown {bad}; allowed {sorted(STRATEGIES)}")


def random_model(key, n, m):
    """A stable rotating-and-decaying state (spectral radius 0.95), noisy partial views."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    Q0, _ = jnp.linalg.qr(jax.random.normal(k1, (n, n)))
    F = 0.95 * Q0
    H = jax.random.normal(k2, (m, n)) / np.sqrt(n)
    X = jax.random.normal(k3, (n, n))
    Y = jax.random.normal(k4, (m, m))
    return msg.LGSSM(
        jnp.zeros(n),
        jnp.eye(n),
        F,
        0.1 * (X @ X.T / n + jnp.eye(n)),
        H,
        0.3 * (Y @ Y.T / m + jnp.eye(m)),
    )


def dense_posterior(model, ys):
    """E[x | y], Cov and log p(y) by conditioning the joint Gaussian of all states."""
    F, Q, H, R = (
        np.asarray(a)
        for a in (model.dynamics, model.dynamics_cov, model.emission, model.emission_cov)
    )
    P0, m0 = np.asarray(model.initial_cov), np.asarray(model.initial_mean)
    T, n = ys.shape[0], F.shape[0]
    # x = G w with w = (x_0 - m_0 ... , w_1, ..., w_{T-1}); G[t, s] = F^(t - s).
    G = np.zeros((T * n, T * n))
    for t in range(T):
        for s in range(t + 1):
            G[t * n : (t + 1) * n, s * n : (s + 1) * n] = np.linalg.matrix_power(F, t - s)
    W = np.kron(np.eye(T), Q)
    W[:n, :n] = P0
    mu = G[:, :n] @ m0
    cov = G @ W @ G.T
    Hb = np.kron(np.eye(T), H)
    S = Hb @ cov @ Hb.T + np.kron(np.eye(T), R)
    e = np.asarray(ys).ravel() - Hb @ mu
    mean = mu + cov @ Hb.T @ np.linalg.solve(S, e)
    ll = -0.5 * (e @ np.linalg.solve(S, e) + np.linalg.slogdet(S)[1] + e.size * np.log(2 * np.pi))
    return mean.reshape(T, n), ll


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    kmodel, kdata = jax.random.split(jax.random.key(cfg.seed))
    model = random_model(kmodel, cfg.state_dim, cfg.obs_dim)
    metrics: dict = {}

    _, ys = msg.lgssm_sample(kdata, model, cfg.dense_length)
    mean_d, ll_d = dense_posterior(model, ys)
    rts = msg.rts_smoother(model, ys)
    by_grad, _ = msg.smoothed_means_by_grad(model, ys)
    metrics["dense"] = {
        "T": cfg.dense_length,
        "rts_means_error": float(np.abs(rts.smoothed_means - mean_d).max()),
        "grad_means_error": float(np.abs(by_grad - mean_d).max()),
        "log_likelihood_error": float(abs(rts.log_likelihood - ll_d)),
    }
    run.log(f"dense conditioning: {metrics['dense']}")

    smoother = jax.jit(lambda ys: msg.rts_smoother(model, ys))
    parallel = jax.jit(lambda ys: msg.parallel_rts_smoother(model, ys))
    grads = {
        n: jax.jit(lambda ys, g=STRATEGIES[n](): msg.smoothed_means_by_grad(model, ys, grad=g)[0])
        for n in cfg.strategies
    }
    obs_grad = jax.jit(jax.grad(lambda ys: msg.kalman_log_likelihood(model, ys)))

    rows = []
    shown = None
    for T in tqdm(cfg.lengths, desc="lengths", leave=False, disable=run.quiet):
        xs, ys = msg.lgssm_sample(jax.random.fold_in(kdata, T), model, T)
        post = smoother(ys)
        scale = float(jnp.abs(post.smoothed_means).max())
        row = {"T": T, "mean_scale": scale}
        for n, f in grads.items():
            row[f"means_error_{n}"] = float(jnp.abs(f(ys) - post.smoothed_means).max())
        gy = obs_grad(ys)
        row["observation_identity_error"] = float(
            jnp.abs(post.smoothed_means @ model.emission.T - (ys + gy @ model.emission_cov.T)).max()
        )
        par = parallel(ys)
        row["parallel_means_error"] = float(jnp.abs(par.smoothed_means - post.smoothed_means).max())
        row["parallel_covs_error"] = float(jnp.abs(par.smoothed_covs - post.smoothed_covs).max())
        rows.append(row)
        run.log(
            f"T={T}: max |grad - RTS| means "
            + ", ".join(f"{n} {row[f'means_error_{n}']:.2e}" for n in cfg.strategies)
            + f" (means up to {scale:.2f}); observation identity "
            f"{row['observation_identity_error']:.2e}; parallel {row['parallel_means_error']:.2e}"
        )
        if shown is None or T <= 200:
            shown = (T, xs, ys, post, grads[cfg.strategies[0]](ys))

    metrics["rows"] = rows
    metrics["max_means_error"] = max(r[f"means_error_{n}"] for r in rows for n in cfg.strategies)
    metrics["max_observation_identity_error"] = max(r["observation_identity_error"] for r in rows)
    metrics["max_parallel_means_error"] = max(r["parallel_means_error"] for r in rows)

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
    Ts = [r["T"] for r in rows]
    for n in cfg.strategies:
        ax0.loglog(
            Ts,
            [max(r[f"means_error_{n}"], 1e-18) for r in rows],
            "o-",
            label=f"means from grad ({n})",
        )
    ax0.loglog(
        Ts,
        [max(r["observation_identity_error"], 1e-18) for r in rows],
        "x--",
        label="H s_t = y_t + R dL/dy_t",
    )
    ax0.loglog(
        Ts, [max(r["parallel_means_error"], 1e-18) for r in rows], "s:", label="parallel RTS"
    )
    ax0.set_xlabel("sequence length T (steps)")
    ax0.set_ylabel("max |difference| from RTS means (state units)")
    ax0.legend(fontsize=8)
    ax0.grid(True, which="both", alpha=0.3)
    T, xs, ys, post, mg = shown
    t = np.arange(T)
    ax1.plot(t, xs[:, 0], "k-", lw=1, label="true x[0]")
    ax1.plot(t, post.filtered_means[:, 0], "C0-", lw=1, label="filtered")
    ax1.plot(t, post.smoothed_means[:, 0], "C1-", lw=2, label="RTS smoothed")
    ax1.plot(t, mg[:, 0], "C3:", lw=2, label="from grad of filter log-lik")
    ax1.set_xlabel("time step")
    ax1.set_ylabel("state component 0 (state units)")
    ax1.legend(fontsize=8)
    run.save_figure(fig, "identity_error.png")
    return metrics
