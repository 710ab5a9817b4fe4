"""Learning chain models: EM, and the parametrisations that gradient ascent needs.

Gradient ascent maximises the forward pass's log-likelihood with optax (through
`diffsim.fit`); EM alternates the smoother (E-step) with closed-form updates (M-step). At a
fixed point of EM the gradient of the log-likelihood vanishes (Fisher's identity again:
the EM objective and the log-likelihood share their gradient at the current parameters),
so on a well-posed problem both reach the same optimum.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float, Int, PRNGKeyArray
from .._rollout import BPTT, AbstractGradient
from ._hmm import HMMPosterior, hmm_log_likelihood, hmm_sample, hmm_smoother, hmm_viterbi
from ._lgssm import LGSSM, kalman_log_likelihood, rts_smoother


class GaussianHMM(eqx.Module):
    """An HMM with diagonal Gaussian emissions, in unconstrained parameters.

    The probabilities are softmaxes of logits (a logit of `-inf` is an exact zero, kept
    by gradient ascent and by EM); the emission scales are exponentials.

    **Arguments:**

    - `initial_logits` (K,), `transition_logits` (K, K);
    - `means` (K, D) and `log_scales` (K, D) of the emissions (units of the data).

    **Raises:** `ValueError` for shapes that do not fit together.

    **Example:**

    ```python
    model = GaussianHMM.from_probs(pi, A, means, scales)
    ll = model.log_likelihood(ys)          # ys: (T, D)
    post = model.smoother(ys)
    ```
    """

    initial_logits: Float[Array, " k"] = eqx.field(converter=jnp.asarray)
    transition_logits: Float[Array, "k k"] = eqx.field(converter=jnp.asarray)
    means: Float[Array, "k d"] = eqx.field(converter=jnp.asarray)
    log_scales: Float[Array, "k d"] = eqx.field(converter=jnp.asarray)

    def __check_init__(self):
        K = jnp.shape(self.initial_logits)[0]
        for name, shape in [
            ("transition_logits", (K, K)),
            ("log_scales", jnp.shape(self.means)),
        ]:
            if jnp.shape(getattr(self, name)) != shape:
                raise ValueError(
                    f"GaussianHMM: {name} must have shape {shape}, "
                    f"got {jnp.shape(getattr(self, name))}"
                )
        if jnp.ndim(self.means) != 2 or jnp.shape(self.means)[0] != K:
            raise ValueError(f"GaussianHMM: means must have shape ({K}, D), got {self.means.shape}")

    @classmethod
    def from_probs(cls, initial, transition, means, scales) -> GaussianHMM:
        """Builds the model from probabilities and scales (zeros allowed)."""
        with jax.numpy_dtype_promotion("standard"):
            return cls(
                jnp.log(jnp.asarray(initial)),
                jnp.log(jnp.asarray(transition)),
                jnp.asarray(means),
                jnp.log(jnp.asarray(scales)),
            )

    @property
    def initial(self) -> Float[Array, " k"]:
        return jax.nn.softmax(self.initial_logits)

    @property
    def transition(self) -> Float[Array, "k k"]:
        return jax.nn.softmax(self.transition_logits, axis=1)

    def log_potentials(self, ys: Float[Array, "t d"]) -> Float[Array, "t k"]:
        """log N(y_t; mean_k, diag(scale_k^2)) for every t and state k."""
        ys = jnp.asarray(ys)
        if ys.ndim != 2 or ys.shape[1] != self.means.shape[1]:
            raise ValueError(
                f"GaussianHMM: ys must have shape (T, {self.means.shape[1]}), got {ys.shape}"
            )
        z = (ys[:, None, :] - self.means[None]) * jnp.exp(-self.log_scales)[None]
        return jnp.sum(-0.5 * z**2 - self.log_scales[None] - 0.5 * np.log(2 * np.pi), axis=-1)

    def log_likelihood(self, ys, *, mask=None, length=None, grad: AbstractGradient = BPTT()):
        """log p(y) by the forward algorithm (a rollout with gradient strategy `grad`)."""
        return hmm_log_likelihood(
            self.initial,
            self.transition,
            self.log_potentials(ys),
            mask=mask,
            length=length,
            grad=grad,
        )

    def smoother(self, ys, *, mask=None, length=None, pairwise=False) -> HMMPosterior:
        """Forward-backward marginals (see `hmm_smoother`)."""
        return hmm_smoother(
            self.initial,
            self.transition,
            self.log_potentials(ys),
            mask=mask,
            length=length,
            pairwise=pairwise,
        )

    def viterbi(self, ys, *, mask=None):
        """The most probable state path and its score (see `hmm_viterbi`)."""
        return hmm_viterbi(self.initial, self.transition, self.log_potentials(ys), mask=mask)

    def sample(
        self, key: PRNGKeyArray, length: int
    ) -> tuple[Int[Array, " t"], Float[Array, "t d"]]:
        """Gives `(states, observations)` drawn from the model."""
        kz, ky = jax.random.split(key)
        zs = hmm_sample(kz, self.initial, self.transition, length)
        eps = jax.random.normal(ky, (length, self.means.shape[1]), self.means.dtype)
        return zs, self.means[zs] + jnp.exp(self.log_scales[zs]) * eps


@eqx.filter_jit
def _hmm_em_step(model: GaussianHMM, ys, min_scale, learn_initial):
    post = hmm_smoother(
        model.initial, model.transition, model.log_potentials(ys), transition_counts=True
    )
    g = post.marginals
    counts = post.transition_counts
    assert counts is not None  # asked for above
    with jax.numpy_dtype_promotion("standard"):
        initial_logits = jnp.log(g[0]) if learn_initial else model.initial_logits
        transition_logits = jnp.log(counts / jnp.sum(counts, axis=1, keepdims=True))
    w = jnp.sum(g, axis=0)[:, None]
    means = (g.T @ ys) / w
    var = (g.T @ ys**2) / w - means**2
    scales = jnp.sqrt(jnp.maximum(var, min_scale**2))
    new = GaussianHMM(initial_logits, transition_logits, means, jnp.log(scales))
    return new, post.log_likelihood


def hmm_em(
    model: GaussianHMM,
    ys: Float[ArrayLike, "t d"],
    *,
    iterations: int,
    tol: float = 0.0,
    min_scale: float = 1e-6,
    learn_initial: bool = True,
    callback: Callable[[int, float], None] | None = None,
) -> tuple[GaussianHMM, list[float]]:
    """Gives a `GaussianHMM` fitted by EM (Baum-Welch) and its log-likelihood per iteration.

    **Arguments:**

    - `model`: the starting point.
    - `ys`: observations (T, D).
    - `iterations`: the most EM iterations, >= 1.
    - `tol`: stop once the log-likelihood rises by less than this in one iteration.
    - `min_scale`: floor on the emission scales (prevents a state collapsing onto a point).
    - `learn_initial`: update p(z_0) too (from one sequence its maximiser is one-hot, which
      gradient ascent on logits only approaches; `False` keeps it fixed).
    - `callback`: called as `callback(iteration, log_likelihood)` (progress bars).

    **Returns:** `(model, lls)` where `lls[i]` is the log-likelihood of the parameters
    before update i + 1 (non-decreasing), and the last entry is the final model's.

    **Raises:** `ValueError` if `iterations` < 1.
    """
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"hmm_em: iterations must be an int >= 1, got {iterations!r}")
    ys = jnp.asarray(ys)
    lls: list[float] = []
    for i in range(iterations):
        new, ll = _hmm_em_step(model, ys, min_scale, learn_initial)
        lls.append(float(ll))
        if callback is not None:
            callback(i, lls[-1])
        model = new
        if len(lls) > 1 and lls[-1] - lls[-2] < tol:
            break
    lls.append(float(model.log_likelihood(ys)))
    return model, lls


# --- LGSSM ------------------------------------------------------------------------------


class LGSSMParams(eqx.Module):
    """Unconstrained parameters of an `LGSSM` for gradient ascent: F, Q and R learned.

    Q = L_Q L_Q^T and R = L_R L_R^T with lower-triangular factors whose diagonals are
    exponentials of free numbers; the initial moments and H are held fixed (with H fixed,
    F, Q and R are identifiable, so EM and gradient ascent can be compared).

    **Example:**

    ```python
    params = LGSSMParams.from_model(model)
    loss = lambda p, batch, key: -kalman_log_likelihood(p.model(), ys)
    ```
    """

    dynamics: Float[Array, "n n"] = eqx.field(converter=jnp.asarray)
    dynamics_cov_raw: Float[Array, "n n"] = eqx.field(converter=jnp.asarray)
    emission_cov_raw: Float[Array, "m m"] = eqx.field(converter=jnp.asarray)
    fixed: LGSSM

    @staticmethod
    def _raw(cov):
        L = jnp.linalg.cholesky(cov)
        return jnp.tril(L, -1) + jnp.diag(jnp.log(jnp.diagonal(L)))

    @staticmethod
    def _cov(raw):
        L = jnp.tril(raw, -1) + jnp.diag(jnp.exp(jnp.diagonal(raw)))
        return L @ L.T

    @classmethod
    def from_model(cls, model: LGSSM) -> LGSSMParams:
        """The parameters of `model` (its F, Q, R; the rest fixed)."""
        return cls(
            model.dynamics,
            cls._raw(model.dynamics_cov),
            cls._raw(model.emission_cov),
            model,
        )

    def model(self) -> LGSSM:
        """The `LGSSM` these parameters describe."""
        f = jax.lax.stop_gradient(self.fixed)
        return LGSSM(
            f.initial_mean,
            f.initial_cov,
            self.dynamics,
            self._cov(self.dynamics_cov_raw),
            f.emission,
            self._cov(self.emission_cov_raw),
        )


@eqx.filter_jit
def _lgssm_em_step(model: LGSSM, ys):
    post = rts_smoother(model, ys)
    ms, Ps, C = post.smoothed_means, post.smoothed_covs, post.smoothed_cross_covs
    assert C is not None  # rts_smoother gives the cross-covariances by default
    T = ys.shape[0]
    Exx = Ps + ms[:, :, None] * ms[:, None, :]
    # E[x_{t+1} x_t^T] = Cov(x_{t+1}, x_t) + s_{t+1} s_t^T
    Enext = jnp.swapaxes(C, 1, 2) + ms[1:, :, None] * ms[:-1, None, :]
    S10 = jnp.sum(Enext, axis=0)
    S00 = jnp.sum(Exx[:-1], axis=0)
    S11 = jnp.sum(Exx[1:], axis=0)
    F = jnp.linalg.solve(S00, S10.T).T
    Q = (S11 - F @ S10.T - S10 @ F.T + F @ S00 @ F.T) / (T - 1)
    H = model.emission
    Syy = ys.T @ ys
    Sxy = ms.T @ ys
    R = (Syy - H @ Sxy - Sxy.T @ H.T + H @ jnp.sum(Exx, axis=0) @ H.T) / T
    sym = lambda X: 0.5 * (X + X.T)  # noqa: E731
    new = LGSSM(model.initial_mean, model.initial_cov, F, sym(Q), H, sym(R))
    return new, post.log_likelihood


def lgssm_em(
    model: LGSSM,
    ys: Float[ArrayLike, "t m"],
    *,
    iterations: int,
    tol: float = 0.0,
    callback: Callable[[int, float], None] | None = None,
) -> tuple[LGSSM, list[float]]:
    """Gives an `LGSSM` whose F, Q, R are fitted by EM, and its log-likelihood per iteration.

    E-step: the RTS smoother's moments and cross-covariances; M-step: the closed-form
    maximisers of the expected complete-data log-likelihood in F, Q and R (H and the
    initial moments held fixed, as in `LGSSMParams`).

    **Arguments:** as `hmm_em` (no `min_scale`).

    **Returns:** `(model, lls)` as `hmm_em`.

    **Raises:** `ValueError` if `iterations` < 1.
    """
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"lgssm_em: iterations must be an int >= 1, got {iterations!r}")
    ys = jnp.asarray(ys)
    lls: list[float] = []
    for i in range(iterations):
        new, ll = _lgssm_em_step(model, ys)
        lls.append(float(ll))
        if callback is not None:
            callback(i, lls[-1])
        model = new
        if len(lls) > 1 and lls[-1] - lls[-2] < tol:
            break
    lls.append(float(kalman_log_likelihood(model, ys)))
    return model, lls
