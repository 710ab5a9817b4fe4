"""Hidden Markov models: the forward algorithm as a rollout, forward-backward, Viterbi.

Conventions: `K` states, `T` time steps. `initial[k] = p(z_0 = k)`;
`transition[i, j] = p(z_{t+1} = j | z_t = i)`, either one `(K, K)` matrix or one per step,
`(T - 1, K, K)`; `log_potentials[t, k] = log p(y_t | z_t = k)` (any log-potentials: the
functions compute the log partition function of the chain they define).

The forward pass works with log-potentials and returns log-probabilities, but carries the
normalised filtered distribution `p(z_t | y_{0:t})` and the running log-normaliser rather
than unnormalised log-messages: `log alpha_t = log p_t + log Z_t` is the log-space message
split into its (bounded) shape and its (unbounded) scale. Each step subtracts the largest
log-potential before exponentiating, so it is stable for any T (tested at T = 100,000),
and exact zeros in the transition matrix stay zeros: there is no `log 0` anywhere in the
sum-product pass, hence no `-inf - (-inf)` in a value or a gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._custom_types import Array, ArrayLike, Float, Int, PRNGKeyArray
from .._rollout import BPTT, AbstractGradient, rollout


class HMMPosterior(NamedTuple):
    """What the HMM smoothers give."""

    log_likelihood: Float[Array, ""]
    """log p(y_{0:T-1}) (the log partition function of the chain)."""
    filtered: Float[Array, "t k"]
    """p(z_t | y_{0:t}); zero rows past `length`."""
    marginals: Float[Array, "t k"]
    """p(z_t | y_{0:T-1}); zero rows past `length`."""
    pairwise: Float[Array, "t-1 k k"] | None = None
    """p(z_t = i, z_{t+1} = j | y); `None` unless asked for."""
    transition_counts: Float[Array, "k k"] | None = None
    """sum_t p(z_t = i, z_{t+1} = j | y) (what EM needs); `None` unless asked for."""


# --- argument checks -------------------------------------------------------------


def _check(initial, transition, log_potentials, mask, name):
    initial = jnp.asarray(initial)
    transition = jnp.asarray(transition)
    log_potentials = jnp.asarray(log_potentials)
    if log_potentials.ndim != 2:
        raise ValueError(
            f"{name}: log_potentials must have shape (T, K), got {log_potentials.shape}"
        )
    T, K = log_potentials.shape
    if T < 1:
        raise ValueError(f"{name}: log_potentials must have at least one time step, got T = {T}")
    if initial.shape != (K,):
        raise ValueError(f"{name}: initial must have shape ({K},), got {initial.shape}")
    if transition.shape not in [(K, K), (T - 1, K, K)]:
        raise ValueError(
            f"{name}: transition must have shape ({K}, {K}) or ({T - 1}, {K}, {K}), "
            f"got {transition.shape}"
        )
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != (T,):
            raise ValueError(f"{name}: mask must have shape ({T},), got {mask.shape}")
        log_potentials = jnp.where(mask[:, None], log_potentials, 0.0)
    return initial, transition, log_potentials


def _active(T, length):
    if length is None:
        return None
    return jnp.arange(T) < length


def _per_step(transition, T):
    """Transition matrices as per-step inputs: (T, K, K), the last one unused."""
    if transition.ndim == 2:
        return None
    return jnp.concatenate(
        [transition, jnp.eye(transition.shape[-1], dtype=transition.dtype)[None]]
    )


# --- the forward algorithm as a rollout ------------------------------------------


def _forward(initial, transition, log_potentials, active, grad, keep):
    """The sum-product forward pass; state (predicted p(z_t | y_{<t}), log Z so far)."""
    T = log_potentials.shape[0]
    A_steps = _per_step(transition, T)
    # The shift is a constant: log Z = m + log sum exp(lp - m) holds for any m, so the
    # gradient need not (and must not, for an all -inf row) flow through the max.
    shift = jax.lax.stop_gradient(jnp.max(log_potentials, axis=1))
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    b = jnp.exp(log_potentials - shift[:, None])

    def step(state, x):
        q, logz = state
        b_t, s_t, A_t, on = x
        u = q * b_t
        c = jnp.sum(u)
        f = u / c
        A = transition if A_t is None else A_t
        q_next = f @ A
        logz_next = logz + jnp.log(c) + s_t
        if on is not None:
            q_next = jnp.where(on, q_next, q)
            logz_next = jnp.where(on, logz_next, logz)
            f = jnp.where(on, f, 0.0)
            c = jnp.where(on, c, 1.0)
        return (q_next, logz_next), ((f, c) if keep else None)

    zero = jnp.zeros((), log_potentials.dtype)
    (_, logz), outs = rollout(step, (initial, zero), (b, shift, A_steps, active), grad=grad)
    return logz, b, outs


def hmm_log_likelihood(
    initial: Float[ArrayLike, " k"],
    transition: Float[ArrayLike, "k k"] | Float[ArrayLike, "tm1 k k"],
    log_potentials: Float[ArrayLike, "t k"],
    *,
    mask: Array | None = None,
    length: Int[Array, ""] | int | None = None,
    grad: AbstractGradient = BPTT(),
) -> Float[Array, ""]:
    """Gives log p(y_{0:T-1}) by the forward algorithm, one `diffsim.rollout`.

    Its gradient with respect to `log_potentials` is the matrix of smoothed marginals
    p(z_t | y) (see `hmm_posterior_by_grad`): the backward pass of reverse-mode autodiff
    through this forward pass is the backward pass of forward-backward.

    **Arguments:**

    - `initial`: p(z_0), shape (K,).
    - `transition`: p(z_{t+1} | z_t), shape (K, K) or (T - 1, K, K); rows sum to 1 for
      `length` to mean "stop here" (any non-negative potentials otherwise).
    - `log_potentials`: log p(y_t | z_t = k), shape (T, K).
    - `mask`: optional (T,) booleans; `False` marks a missing observation (potential 1).
    - `length`: optional number of valid steps (ragged batches under `jax.vmap`); later
      steps are ignored.
    - `grad`: the rollout's gradient strategy (`BPTT()`, `Checkpointed()`, ...).

    **Returns:** the scalar log-likelihood.

    **Raises:** `ValueError` for mismatched shapes.

    **Example:**

    ```python
    ll = hmm_log_likelihood(pi, A, log_potentials)
    marginals = jax.grad(hmm_log_likelihood, argnums=2)(pi, A, log_potentials)
    ```
    """
    initial, transition, log_potentials = _check(
        initial, transition, log_potentials, mask, "hmm_log_likelihood"
    )
    active = _active(log_potentials.shape[0], length)
    return _forward(initial, transition, log_potentials, active, grad, keep=False)[0]


def hmm_filter(
    initial: Float[ArrayLike, " k"],
    transition: Float[ArrayLike, "k k"] | Float[ArrayLike, "tm1 k k"],
    log_potentials: Float[ArrayLike, "t k"],
    *,
    mask: Array | None = None,
    length: Int[Array, ""] | int | None = None,
    grad: AbstractGradient = BPTT(),
) -> tuple[Float[Array, ""], Float[Array, "t k"]]:
    """Gives the log-likelihood and the filtered distributions p(z_t | y_{0:t}).

    Arguments as for `hmm_log_likelihood`. **Returns:** `(log_likelihood, filtered)`,
    `filtered` of shape (T, K) with zero rows past `length`.
    """
    initial, transition, log_potentials = _check(
        initial, transition, log_potentials, mask, "hmm_filter"
    )
    active = _active(log_potentials.shape[0], length)
    logz, _, (filtered, _) = _forward(initial, transition, log_potentials, active, grad, True)
    return logz, filtered


def hmm_smoother(
    initial: Float[ArrayLike, " k"],
    transition: Float[ArrayLike, "k k"] | Float[ArrayLike, "tm1 k k"],
    log_potentials: Float[ArrayLike, "t k"],
    *,
    mask: Array | None = None,
    length: Int[Array, ""] | int | None = None,
    pairwise: bool = False,
    transition_counts: bool = False,
) -> HMMPosterior:
    """Gives the smoothed marginals p(z_t | y) by the forward-backward algorithm.

    The forward pass is `hmm_filter`'s rollout; the backward pass propagates the scaled
    message beta_t(i) = p(y_{t+1:} | z_t = i) / p(y_{t+1:} | y_{0:t}) from the future,
    beta_t = A_t (b_{t+1} * beta_{t+1}) / c_{t+1}, and the marginals are p_t * beta_t.

    **Arguments:** as `hmm_log_likelihood`; `pairwise=True` also gives the pairwise
    marginals p(z_t = i, z_{t+1} = j | y), shape (T - 1, K, K); `transition_counts=True`
    gives their sum over t, shape (K, K), without forming the (T - 1, K, K) array (for a
    fixed transition matrix it is A * (filtered^T r), one matrix product).

    **Returns:** an `HMMPosterior`.

    **Raises:** `ValueError` for mismatched shapes.

    **Example:**

    ```python
    post = hmm_smoother(pi, A, log_potentials, pairwise=True)
    post.marginals.sum(axis=1)   # ones
    ```
    """
    initial, transition, log_potentials = _check(
        initial, transition, log_potentials, mask, "hmm_smoother"
    )
    T, K = log_potentials.shape
    active = _active(T, length)
    logz, b, (filtered, c) = _forward(initial, transition, log_potentials, active, BPTT(), True)
    if active is not None:
        b = jnp.where(active[:, None], b, 1.0)
    # r_{t+1} = b_{t+1} beta_{t+1} / c_{t+1}; beta_t = A_t r_{t+1}.
    ones = jnp.ones((K,), filtered.dtype)
    if transition.ndim == 2:

        def back(beta, x):
            b_next, c_next = x
            r = b_next * beta / c_next
            return transition @ r, r

        xs = (b[1:], c[1:])
    else:

        def back(beta, x):
            b_next, c_next, A_t = x
            r = b_next * beta / c_next
            return A_t @ r, r

        xs = (b[1:], c[1:], transition)

    def back_step(beta, x):
        nb, r = back(beta, x)
        return nb, (nb, r)

    _, (betas, rs) = jax.lax.scan(back_step, ones, xs, reverse=True)
    betas = jnp.concatenate([betas, ones[None]])
    marginals = filtered * betas
    pairs = None
    if pairwise:
        A = transition if transition.ndim == 3 else transition[None]
        pairs = filtered[:-1, :, None] * A * rs[:, None, :]
        if active is not None:
            pairs = jnp.where(active[1:, None, None], pairs, 0.0)
    counts = None
    if transition_counts:
        r = rs if active is None else jnp.where(active[1:, None], rs, 0.0)
        if transition.ndim == 2:
            counts = transition * (filtered[:-1].T @ r)
        else:
            counts = jnp.einsum("ti,tij,tj->ij", filtered[:-1], transition, r)
    return HMMPosterior(logz, filtered, marginals, pairs, counts)


def hmm_posterior_by_grad(
    initial: Float[ArrayLike, " k"],
    transition: Float[ArrayLike, "k k"] | Float[ArrayLike, "tm1 k k"],
    log_potentials: Float[ArrayLike, "t k"],
    *,
    mask: Array | None = None,
    length: Int[Array, ""] | int | None = None,
    pairwise: bool = False,
    grad: AbstractGradient = BPTT(),
) -> HMMPosterior:
    """Gives the smoothed marginals as the gradient of the forward pass's log-likelihood.

    log Z = log sum_z prod_t psi_t(z_t) prod_t A(z_t, z_{t+1}), so
    d log Z / d log psi_t(k) = p(z_t = k | y) and, for a per-step transition matrix,
    d log Z / d log A_t(i, j) = p(z_t = i, z_{t+1} = j | y). Reverse-mode autodiff of the
    forward rollout is therefore a backward (smoothing) pass; any rollout gradient
    strategy gives the same marginals. No backward recursion is written here.

    **Arguments:** as `hmm_smoother`, plus the rollout's `grad` strategy.

    **Returns:** an `HMMPosterior` (`filtered` from the same forward pass).

    **Example:**

    ```python
    post = hmm_posterior_by_grad(pi, A, log_potentials, grad=diffsim.Checkpointed())
    ```
    """
    initial, transition, log_potentials = _check(
        initial, transition, log_potentials, mask, "hmm_posterior_by_grad"
    )
    T, K = log_potentials.shape
    active = _active(T, length)
    if pairwise:
        A_t = jnp.broadcast_to(transition, (T - 1, K, K))

        def logz_fn(lp, log_A):
            logz, _, outs = _forward(initial, jnp.exp(log_A), lp, active, grad, True)
            return logz, outs[0]

        # Exact zeros of A have log A = -inf, exp(-inf) = 0 and a zero gradient.
        with jax.numpy_dtype_promotion("standard"):
            log_A = jnp.log(A_t)
        (logz, filtered), (marginals, pairs) = jax.value_and_grad(
            logz_fn, argnums=(0, 1), has_aux=True
        )(log_potentials, log_A)
        return HMMPosterior(logz, filtered, marginals, pairs)

    def logz_fn1(lp):
        logz, _, outs = _forward(initial, transition, lp, active, grad, True)
        return logz, outs[0]

    (logz, filtered), marginals = jax.value_and_grad(logz_fn1, has_aux=True)(log_potentials)
    return HMMPosterior(logz, filtered, marginals, None)


# --- max-product: Viterbi ----------------------------------------------------------


def _max_forward(initial, transition, log_potentials, active, grad, keep_pointers):
    """Tropical forward pass; state (predicted max-scores shifted to max 0, score so far)."""
    T, K = log_potentials.shape
    with jax.numpy_dtype_promotion("standard"):
        log_A = jnp.log(transition)
        log_init = jnp.log(initial)
    A_steps = _per_step(log_A, T)

    def step(state, x):
        d, score = state
        lp, A_t, on = x
        s = d + lp
        # Unlike the sum-product shift, m is the score itself: its gradient must flow.
        m = jnp.max(s)
        f = s - m
        la = log_A if A_t is None else A_t
        cand = f[:, None] + la
        d_next = jnp.max(cand, axis=0)
        score_next = score + m
        ptr = jnp.argmax(cand, axis=0) if keep_pointers else None
        if on is not None:
            d_next = jnp.where(on, d_next, d)
            score_next = jnp.where(on, score_next, score)
            f = jnp.where(on, f, 0.0)
        return (d_next, score_next), ((f, ptr) if keep_pointers else None)

    zero = jnp.zeros((), log_potentials.dtype)
    (_, score), outs = rollout(step, (log_init, zero), (log_potentials, A_steps, active), grad=grad)
    return score, outs


def hmm_max_score(
    initial: Float[ArrayLike, " k"],
    transition: Float[ArrayLike, "k k"] | Float[ArrayLike, "tm1 k k"],
    log_potentials: Float[ArrayLike, "t k"],
    *,
    mask: Array | None = None,
    length: Int[Array, ""] | int | None = None,
    grad: AbstractGradient = BPTT(),
) -> Float[Array, ""]:
    """Gives max_z log p(z, y) by the max-product (tropical) forward pass, a rollout.

    The forward algorithm with (logsumexp, +) replaced by (max, +). Its gradient with
    respect to `log_potentials` is the one-hot encoding of the Viterbi path (where the
    maximiser is unique): see `hmm_viterbi_by_grad`. Arguments as `hmm_log_likelihood`.
    """
    initial, transition, log_potentials = _check(
        initial, transition, log_potentials, mask, "hmm_max_score"
    )
    active = _active(log_potentials.shape[0], length)
    return _max_forward(initial, transition, log_potentials, active, grad, False)[0]


def hmm_viterbi(
    initial: Float[ArrayLike, " k"],
    transition: Float[ArrayLike, "k k"] | Float[ArrayLike, "tm1 k k"],
    log_potentials: Float[ArrayLike, "t k"],
    *,
    mask: Array | None = None,
    length: Int[Array, ""] | int | None = None,
) -> tuple[Int[Array, " t"], Float[Array, ""]]:
    """Gives the most probable state path and its score max_z log p(z, y), by backtracking.

    **Arguments:** as `hmm_log_likelihood`.

    **Returns:** `(path, score)`: `path` of shape (T,) (entries past `length` are 0).

    **Example:**

    ```python
    path, score = hmm_viterbi(pi, A, log_potentials)
    ```
    """
    initial, transition, log_potentials = _check(
        initial, transition, log_potentials, mask, "hmm_viterbi"
    )
    T = log_potentials.shape[0]
    active = _active(T, length)
    score, (f, ptrs) = _max_forward(initial, transition, log_potentials, active, BPTT(), True)
    last = T - 1 if length is None else jnp.asarray(length) - 1
    z_last = jnp.argmax(f[last])

    def back(z_next, x):
        ptr, t = x
        z = jnp.where(t < last, ptr[z_next], z_next)
        return z, z

    # ptrs[t][j] is the best predecessor (at t) of state j at t + 1.
    _, path = jax.lax.scan(back, z_last, (ptrs[:-1], jnp.arange(T - 1)), reverse=True)
    path = jnp.concatenate([path, z_last[None]])
    if active is not None:
        path = jnp.where(active, path, 0)
    return path, score


def hmm_viterbi_by_grad(
    initial: Float[ArrayLike, " k"],
    transition: Float[ArrayLike, "k k"] | Float[ArrayLike, "tm1 k k"],
    log_potentials: Float[ArrayLike, "t k"],
    *,
    mask: Array | None = None,
    length: Int[Array, ""] | int | None = None,
    grad: AbstractGradient = BPTT(),
) -> tuple[Int[Array, " t"], Float[Array, ""]]:
    """Gives the Viterbi path as the gradient of `hmm_max_score` (no backtracking written).

    d max_z [sum_t log psi_t(z_t) + ...] / d log psi_t(k) = 1[z*_t = k] for a unique
    maximiser z*: backpropagation through the tropical forward pass is backtracking.

    **Returns:** `(path, score)` as `hmm_viterbi`.
    """
    initial, transition, log_potentials = _check(
        initial, transition, log_potentials, mask, "hmm_viterbi_by_grad"
    )
    active = _active(log_potentials.shape[0], length)
    score, onehot = jax.value_and_grad(
        lambda lp: _max_forward(initial, transition, lp, active, grad, False)[0]
    )(log_potentials)
    path = jnp.argmax(onehot, axis=1)
    return path, score


# --- sampling ----------------------------------------------------------------------


def hmm_sample(
    key: PRNGKeyArray,
    initial: Float[ArrayLike, " k"],
    transition: Float[ArrayLike, "k k"],
    length: int,
) -> Int[Array, " t"]:
    """Gives a state path z_0..z_{T-1} drawn from the Markov chain (a rollout).

    **Arguments:** `key`, `initial` (K,), `transition` (K, K), `length` T >= 1.

    **Returns:** integer states, shape (T,).
    """
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"hmm_sample: length must be an int >= 1, got {length!r}")
    with jax.numpy_dtype_promotion("standard"):
        log_A = jnp.log(transition)
        log_init = jnp.log(initial)
    keys = jax.random.split(key, length)
    z0 = jax.random.categorical(keys[0], log_init)
    if length == 1:
        return z0[None]

    def step(z, k):
        z_next = jax.random.categorical(k, log_A[z])
        return z_next, z_next

    _, zs = rollout(step, z0, keys[1:])
    return jnp.concatenate([z0[None], zs])


def hmm_posterior_sample(
    key: PRNGKeyArray,
    initial: Float[ArrayLike, " k"],
    transition: Float[ArrayLike, "k k"] | Float[ArrayLike, "tm1 k k"],
    log_potentials: Float[ArrayLike, "t k"],
    *,
    mask: Array | None = None,
) -> Int[Array, " t"]:
    """Gives a state path drawn from p(z | y): forward filtering, backward sampling.

    **Arguments:** `key` and as `hmm_log_likelihood`. **Returns:** integer states (T,).
    """
    initial, transition, log_potentials = _check(
        initial, transition, log_potentials, mask, "hmm_posterior_sample"
    )
    T, K = log_potentials.shape
    _, filtered = hmm_filter(initial, transition, log_potentials)
    keys = jax.random.split(key, T)
    tiny = jnp.finfo(filtered.dtype).tiny
    z_last = jax.random.categorical(keys[-1], jnp.log(jnp.maximum(filtered[-1], tiny)))
    A = jnp.broadcast_to(transition, (T - 1, K, K))

    def back(z_next, x):
        f, A_t, k = x
        w = f * A_t[:, z_next]
        z = jax.random.categorical(k, jnp.where(w > 0, jnp.log(jnp.maximum(w, tiny)), -jnp.inf))
        return z, z

    _, zs = jax.lax.scan(back, z_last, (filtered[:-1], A, keys[:-1]), reverse=True)
    return jnp.concatenate([zs, z_last[None]])


# --- ragged batches ----------------------------------------------------------------


def pad_sequences(sequences: list, fill: float = 0.0) -> tuple[Array, Int[Array, " b"]]:
    """Gives `(padded, lengths)`: sequences of different lengths stacked to (B, T_max, ...).

    Use with `jax.vmap(lambda lp, n: hmm_smoother(pi, A, lp, length=n))(padded, lengths)`.

    **Raises:** `ValueError` for an empty list or sequences whose trailing shapes differ.
    """
    if not sequences:
        raise ValueError("pad_sequences: sequences must not be empty")
    arrays = [jnp.asarray(s) for s in sequences]
    trailing = {a.shape[1:] for a in arrays}
    if len(trailing) != 1:
        raise ValueError(f"pad_sequences: trailing shapes differ: {sorted(trailing)}")
    t_max = max(a.shape[0] for a in arrays)
    padded = jnp.stack(
        [
            jnp.concatenate([a, jnp.full((t_max - a.shape[0], *a.shape[1:]), fill, a.dtype)])
            for a in arrays
        ]
    )
    return padded, jnp.array([a.shape[0] for a in arrays])


# --- parallel (associative scan) ---------------------------------------------------


def _normalised_matmul(x, y):
    M1, l1 = x
    M2, l2 = y
    M = M1 @ M2
    n = jnp.max(M, axis=(-2, -1), keepdims=True)
    n = jnp.where(n > 0, n, 1.0)
    return M / n, l1 + l2 + jnp.log(n[..., 0, 0])


def parallel_hmm_smoother(
    initial: Float[ArrayLike, " k"],
    transition: Float[ArrayLike, "k k"] | Float[ArrayLike, "tm1 k k"],
    log_potentials: Float[ArrayLike, "t k"],
    *,
    mask: Array | None = None,
) -> HMMPosterior:
    """Gives `hmm_smoother`'s marginals by two associative scans of matrix products.

    alpha_t = pi^T M_0 ... M_t and beta_t = M_{t+1} ... M_{T-1} 1 with M_t = A b_t are
    prefix and suffix products, computed in O(log T) depth and O(T K^3) work (the
    sequential pass is O(T K^2)): it pays on parallel hardware for long sequences and
    small K, not on a few CPU cores. Each product is rescaled by its largest entry, the
    scales summed in log space.

    **Arguments:** as `hmm_smoother` (no `length`, no pairwise marginals).

    **Returns:** an `HMMPosterior` (`pairwise` is `None`).
    """
    initial, transition, log_potentials = _check(
        initial, transition, log_potentials, mask, "parallel_hmm_smoother"
    )
    T, K = log_potentials.shape
    shift = jnp.max(log_potentials, axis=1)
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    b = jnp.exp(log_potentials - shift[:, None])
    A = jnp.broadcast_to(transition, (T - 1, K, K))
    first = jnp.broadcast_to(initial * b[0], (K, K))  # every row: the first message
    M = jnp.concatenate([first[None], A * b[1:, None, :]])
    zeros = jnp.zeros((T,), b.dtype)
    fwd, lf = jax.lax.associative_scan(_normalised_matmul, (M, zeros))
    alpha = fwd[:, 0, :]
    z = jnp.sum(alpha, axis=1)
    filtered = alpha / z[:, None]
    logz = jnp.log(z[-1]) + lf[-1] + jnp.sum(shift)
    # Suffix products M_{t+1} ... M_{T-1} J with J all ones: every column is beta_t.
    J = jnp.ones((1, K, K), b.dtype)
    S = jnp.concatenate([M[1:], J])
    bwd, _ = jax.lax.associative_scan(
        lambda x, y: _normalised_matmul(y, x), (S, zeros), reverse=True
    )
    beta = bwd[:, :, 0]
    g = filtered * beta
    marginals = g / jnp.sum(g, axis=1, keepdims=True)
    return HMMPosterior(logz, filtered, marginals, None)


__all__ = [
    "HMMPosterior",
    "hmm_filter",
    "hmm_log_likelihood",
    "hmm_max_score",
    "hmm_posterior_by_grad",
    "hmm_posterior_sample",
    "hmm_sample",
    "hmm_smoother",
    "hmm_viterbi",
    "hmm_viterbi_by_grad",
    "pad_sequences",
]
