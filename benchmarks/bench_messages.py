"""diffsim.messages against dynamax and hmmlearn's compiled C++, side by side in one process.

    .venv/bin/python benchmarks/bench_messages.py [--quick]

Rows (issue 15), float64 on the CPU, medians of repeated calls of compiled functions
(the first call, which compiles, is timed during the agreement check and printed as
"compile s"), the references called as their authors
intend: dynamax's jitted `hmm_smoother` (with and without pairwise probabilities; the
latter through its undecorated function jitted with the flag static, since dynamax 1.0.3
traces the flag), its parallel smoother, and hmmlearn's C++ `forward_scaling` /
`backward_scaling` (its fastest implementation) on precomputed frame likelihoods plus the
posterior normalisation it does itself.

1. HMM smoother, K = 10, T = 10,000 (and K = 100): marginals; marginals + pairwise
   (summed over time, as EM needs them); marginals by jax.grad of the forward pass;
   parallel (associative scan).
2. LGSSM smoother, state dimension 4, observations 2, T = 10,000: RTS, smoothed means by
   jax.grad of the filter log-likelihood, parallel.

Every output is checked against the reference (stated tolerances) before timing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from dynamax.hidden_markov_model import (
    hmm_smoother as dyn_hmm_smoother,  # noqa: E402
    parallel_inference as dyn_hmm_par,  # noqa: E402
)
from dynamax.linear_gaussian_ssm import parallel_inference as dyn_lgssm_par  # noqa: E402
from dynamax.linear_gaussian_ssm.inference import (
    lgssm_smoother as dyn_lgssm,  # noqa: E402
    make_lgssm_params,  # noqa: E402
)
from hmmlearn import _hmmc  # noqa: E402

from diffsim import messages as msg  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _timing import interleaved, machine_load  # noqa: E402

TOL = 1e-8
COMPILE: dict[str, float] = {}


def first_call(name, fn, *args):
    """Calls `fn` once (compiling it), records the wall time, returns the result."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    COMPILE[name] = time.perf_counter() - t0
    return out


def hmm_problem(K, T, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.dirichlet(np.ones(K), size=K) + 5 * np.eye(K)
    A /= A.sum(1, keepdims=True)
    pi = rng.dirichlet(np.ones(K))
    lp = 2.0 * rng.normal(size=(T, K))
    return pi, A, lp


def hmmlearn_smoother(pi, A, lp):
    """hmmlearn's scaling forward-backward (C++), as `_score_scaling` runs it."""
    frame = np.exp(lp - lp.max(axis=1, keepdims=True))
    _, fwd, scale = _hmmc.forward_scaling(pi, A, frame)
    bwd = _hmmc.backward_scaling(pi, A, frame, scale)
    post = fwd * bwd
    return post / post.sum(axis=1, keepdims=True)


def report(title, times, baseline_names):
    print(f"\n{title}   [{machine_load()}]")
    print(
        f"{'':44s} {'median ms':>10s} {'compile s':>9s}  "
        + "  ".join(f"{'/ ' + b:>14s}" for b in baseline_names)
    )
    for name, t in times.items():
        ratios = "  ".join(f"{t.median / times[b].median:14.2f}" for b in baseline_names)
        print(f"{name:44s} {1e3 * t.median:10.2f} {COMPILE.get(name, t.first):9.2f}  {ratios}")


def bench_hmm(K, T, repeats, parallel):
    pi, A, lp = hmm_problem(K, T)
    pij, Aj, lpj = jnp.asarray(pi), jnp.asarray(A), jnp.asarray(lp)

    ours = jax.jit(lambda pi, A, lp: msg.hmm_smoother(pi, A, lp).marginals)
    ours_pairs = jax.jit(
        lambda pi, A, lp: (lambda p: (p.marginals, p.transition_counts))(
            msg.hmm_smoother(pi, A, lp, transition_counts=True)
        )
    )
    ours_grad = jax.jit(lambda pi, A, lp: msg.hmm_posterior_by_grad(pi, A, lp).marginals)
    ours_par = jax.jit(lambda pi, A, lp: msg.parallel_hmm_smoother(pi, A, lp).marginals)
    dyn_nopairs = jax.jit(
        lambda pi, A, lp: (
            dyn_hmm_smoother.__wrapped__(pi, A, lp, compute_trans_probs=False).smoothed_probs
        )
    )

    def dyn_pairs(pi, A, lp):
        p = dyn_hmm_smoother(pi, A, lp)
        return p.smoothed_probs, p.trans_probs

    dyn_par = jax.jit(lambda pi, A, lp: dyn_hmm_par.hmm_smoother(pi, A, lp).smoothed_probs)

    ref = hmmlearn_smoother(pi, A, lp)
    args = (pij, Aj, lpj)
    checks = {
        "diffsim hmm_smoother": first_call("diffsim hmm_smoother", ours, *args),
        "diffsim hmm_posterior_by_grad": first_call(
            "diffsim hmm_posterior_by_grad", ours_grad, *args
        ),
        "dynamax hmm_smoother (no pairs)": first_call(
            "dynamax hmm_smoother (no pairs)", dyn_nopairs, *args
        ),
    }
    if parallel:
        for name, f in [
            ("diffsim parallel_hmm_smoother", ours_par),
            ("dynamax parallel hmm_smoother", dyn_par),
        ]:
            checks[name] = first_call(name, f, *args)
    for name, out in checks.items():
        err = float(np.abs(np.asarray(out) - ref).max())
        assert err < TOL, f"{name} differs from hmmlearn by {err}"
    (_, x1) = first_call("diffsim hmm_smoother (+ pairwise)", ours_pairs, *args)
    (_, x2) = first_call("dynamax hmm_smoother (+ pairwise)", dyn_pairs, *args)
    assert float(np.abs(x1 - x2).max()) < TOL * T, "pairwise sums differ from dynamax"
    print(
        f"\nK = {K}, T = {T}: all marginals agree with hmmlearn's to {TOL} "
        f"(pairwise sums with dynamax's to {TOL * T:g})"
    )

    calls = {
        "hmmlearn C++ forward-backward (scaling)": (hmmlearn_smoother, (pi, A, lp)),
        "dynamax hmm_smoother (no pairs)": (dyn_nopairs, args),
        "diffsim hmm_smoother": (ours, args),
        "dynamax hmm_smoother (+ pairwise)": (dyn_pairs, args),
        "diffsim hmm_smoother (+ pairwise)": (ours_pairs, args),
        "diffsim hmm_posterior_by_grad": (ours_grad, args),
    }
    if parallel:
        calls["dynamax parallel hmm_smoother"] = (dyn_par, args)
        calls["diffsim parallel_hmm_smoother"] = (ours_par, args)
    times = interleaved(calls, repeats=repeats)
    report(
        f"HMM smoother, K = {K}, T = {T}",
        times,
        ["hmmlearn C++ forward-backward (scaling)", "dynamax hmm_smoother (no pairs)"],
    )
    pairs = [
        ("diffsim hmm_smoother", "dynamax hmm_smoother (no pairs)"),
        ("diffsim hmm_smoother (+ pairwise)", "dynamax hmm_smoother (+ pairwise)"),
        ("diffsim hmm_posterior_by_grad", "dynamax hmm_smoother (no pairs)"),
        ("diffsim hmm_smoother", "hmmlearn C++ forward-backward (scaling)"),
    ]
    if parallel:
        pairs.append(("diffsim parallel_hmm_smoother", "dynamax parallel hmm_smoother"))
    for a, b in pairs:
        print(f"  {a} / {b}: {times[a].median / times[b].median:.2f}")
    return times


def bench_lgssm(n, m, T, repeats):
    rng = np.random.default_rng(1)
    Q0, _ = np.linalg.qr(rng.normal(size=(n, n)))
    F = 0.95 * Q0
    H = rng.normal(size=(m, n)) / np.sqrt(n)
    model = msg.LGSSM(
        jnp.zeros(n), jnp.eye(n), jnp.asarray(F), 0.1 * jnp.eye(n), jnp.asarray(H), 0.3 * jnp.eye(m)
    )
    _, ys = msg.lgssm_sample(jax.random.key(0), model, T)
    params = make_lgssm_params(
        model.initial_mean,
        model.initial_cov,
        model.dynamics,
        model.dynamics_cov,
        model.emission,
        model.emission_cov,
    )

    ours = jax.jit(lambda ys: msg.rts_smoother(model, ys).smoothed_means)
    ours_grad = jax.jit(lambda ys: msg.smoothed_means_by_grad(model, ys)[0])
    ours_par = jax.jit(lambda ys: msg.parallel_rts_smoother(model, ys).smoothed_means)
    dyn = jax.jit(lambda ys: dyn_lgssm(params, ys).smoothed_means)
    dyn_par = jax.jit(lambda ys: dyn_lgssm_par.lgssm_smoother(params, ys).smoothed_means)

    ref = np.asarray(first_call("dynamax lgssm_smoother", dyn, ys))
    for name, f in [
        ("diffsim rts_smoother", ours),
        ("diffsim smoothed_means_by_grad", ours_grad),
        ("diffsim parallel_rts_smoother", ours_par),
        ("dynamax parallel lgssm_smoother", dyn_par),
    ]:
        err = float(np.abs(np.asarray(first_call(name, f, ys)) - ref).max())
        assert err < 1e-6, f"{name} smoothed means differ from dynamax's by {err}"
    print(f"\nLGSSM n = {n}, m = {m}, T = {T}: smoothed means agree with dynamax's to 1e-6")
    times = interleaved(
        {
            "dynamax lgssm_smoother": (dyn, (ys,)),
            "diffsim rts_smoother": (ours, (ys,)),
            "diffsim smoothed_means_by_grad": (ours_grad, (ys,)),
            "dynamax parallel lgssm_smoother": (dyn_par, (ys,)),
            "diffsim parallel_rts_smoother": (ours_par, (ys,)),
        },
        repeats=repeats,
    )
    report(f"LGSSM smoother, n = {n}, T = {T}", times, ["dynamax lgssm_smoother"])
    for a, b in [
        ("diffsim rts_smoother", "dynamax lgssm_smoother"),
        ("diffsim smoothed_means_by_grad", "dynamax lgssm_smoother"),
        ("diffsim parallel_rts_smoother", "dynamax parallel lgssm_smoother"),
    ]:
        print(f"  {a} / {b}: {times[a].median / times[b].median:.2f}")
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 1,000, K = 10 only")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--only", choices=["hmm10", "hmm100", "lgssm"], nargs="*", help="run these rows only"
    )
    a = parser.parse_args()
    T = 1000 if a.quick else 10_000
    only = set(a.only or ["hmm10", "hmm100", "lgssm"])
    if "hmm10" in only:
        bench_hmm(10, T, a.repeats, parallel=True)
    if "hmm100" in only and not a.quick:
        bench_hmm(100, T, max(3, a.repeats // 3), parallel=False)
    if "lgssm" in only:
        bench_lgssm(4, 2, T, a.repeats)


if __name__ == "__main__":
    main()
