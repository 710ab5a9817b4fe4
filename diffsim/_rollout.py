"""The one rollout: `lax.scan` over a step, with a selectable gradient strategy.

A step is `state, out = step(state, x)`. Parameters are closed over (or live in the
state); every strategy below differentiates with respect to them, the initial state and
the inputs `xs`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._checks import check_finite, is_concrete, stop_int_gradients, strong_types
from ._custom_types import PyTree

Step = Callable[[Any, Any], tuple[Any, Any]]


class AbstractGradient(eqx.Module):
    """How reverse-mode autodiff goes back through a rollout.

    A new strategy is a new subclass implementing `scan`; `rollout` takes an instance
    as its `grad=` argument. The forward values of every strategy are identical.
    """

    @abc.abstractmethod
    def scan(self, step: Step, state0: PyTree, xs: PyTree, length: int) -> tuple[PyTree, PyTree]:
        """Runs `length` steps; returns `(final_state, stacked_outs)`."""


class BPTT(AbstractGradient):
    """Backpropagation through time: the plain scan. Stores every step's residuals.

    Memory O(T) in the number of steps; the fastest backward pass.
    """

    def scan(self, step, state0, xs, length):
        return jax.lax.scan(lambda s, x: step(s, x), state0, xs, length=length)


class Checkpointed(AbstractGradient):
    """BPTT in bounded memory: nested scans whose segments are recomputed on the way back.

    With `levels = L` nested scans, T steps are split into about T^(1/L) segments per
    level, so peak memory is O(L T^(1/L)) states (O(sqrt T) for the default L = 2) and
    the backward pass recomputes the forward L - 1 extra times. The gradient equals
    BPTT's up to floating-point reassociation. Each segment's recomputation waits for the
    cotangent of that segment (a custom VJP, not `jax.checkpoint`), so the memory bound
    holds even where a compiler unrolls the loop over segments (with `jax.checkpoint`,
    jax 0.11 on the CPU and the GPU kept every segment's residuals: 14.9x the memory for
    16x the steps). Like `DiscreteAdjoint`, it serves reverse mode only: `jax.jvp` /
    `jax.jacfwd` through it raise a `TypeError` (use `BPTT()` there); `jax.grad` of
    `jax.grad` works.

    With `inner=DiscreteAdjoint()` each recomputed innermost segment is differentiated by
    the costate recursion instead of BPTT: the segment's states are recomputed and stored
    (not its steps' internals), then one step's VJP runs at a time, so peak memory is the
    stored segment entries, one segment's states and ONE step's residuals. That is the
    composition for steps whose internals dwarf the state (a neural ODE: an RK4 step of an
    MLP field holds four MLP evaluations' activations); if the step's own VJP is still too
    big, rematerialise inside the step too (`diffsim.ode.solve(..., remat_stages=True)`
    keeps one stage's activations at a time). Cost: the one extra forward pass of
    `levels=2`, plus what the inner strategy adds (DiscreteAdjoint re-runs each step inside
    its VJP). Neural ODE of `benchmarks/bench_ode.py` (float64, CPU): 1.06 MB of working
    memory against DiscreteAdjoint's 2.9 MB and BPTT's 218 MB, at about 6.6x the forward's
    CPU time against 5.0x and 8.0x.

    **Arguments:**

    - `segments`: number of outer segments; `None` picks round(T^(1/levels)).
    - `levels`: depth of nesting, >= 1 (1 is plain BPTT, or `inner` alone).
    - `inner`: the strategy that differentiates each innermost segment once it is
      recomputed: `None` (BPTT through the segment, the default) or another exact
      strategy such as `DiscreteAdjoint()`.

    **Example:** `rollout(step, s0, length=100, grad=Checkpointed(segments=10,
    inner=DiscreteAdjoint()))` stores 10 states on the way forward, 10 more while one
    segment is recomputed, and one step's residuals.
    """

    segments: int | None = None
    levels: int = 2
    inner: AbstractGradient | None = None

    def __check_init__(self):
        if self.levels < 1:
            raise ValueError(f"Checkpointed: levels must be >= 1, got {self.levels}")
        if self.segments is not None and self.segments < 1:
            raise ValueError(f"Checkpointed: segments must be >= 1 or None, got {self.segments}")
        if self.inner is not None and not isinstance(self.inner, AbstractGradient):
            raise ValueError(
                f"Checkpointed: inner must be a gradient strategy such as DiscreteAdjoint() "
                f"or None, got {self.inner!r}"
            )

    def scan(self, step, state0, xs, length):
        if self.levels <= 1 or length <= 2:
            if self.inner is not None:
                return self.inner.scan(step, state0, xs, length)
            return jax.lax.scan(step, state0, xs, length=length)
        step_cc = _convert(step, state0, _first(xs))
        return _checkpointed_scan(
            (step_cc, state0, xs), length, self.levels, self.segments, self.inner
        )


def _slice(xs, start, stop):
    return jtu.tree_map(lambda a: a[start:stop], xs)


def _split(length, levels, segments):
    n = segments if segments is not None else max(1, round(length ** (1.0 / levels)))
    n = min(n, length)
    k = length // n
    return n, k, n * k


# How many segments one iteration of the outer loops runs (1 on every backend). Tests set
# it to True (the loops fully unrolled) to reproduce on the CPU what XLA's GPU pipeline
# may do to a loop: once unrolled, nothing but a data dependence keeps the recomputation
# of a segment after the backward pass of the segment behind it.
_UNROLL_SEGMENTS: int | bool = 1


def _finite_flag(tree):
    leaves = [jnp.all(jnp.isfinite(a)) for a in jtu.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _inner_scan(step, state, xs, length, levels, inner):
    if levels <= 1 or length <= 2:
        if inner is not None:
            return inner.scan(step, state, xs, length)
        return jax.lax.scan(lambda s, x: step(s, x), state, xs, length=length)
    return _checkpointed_scan((step, state, xs), length, levels, None, inner)


@eqx.filter_custom_vjp
def _checkpointed_scan(vjp_arg, length, levels, segments, inner):
    step, state0, xs = vjp_arg
    return jax.lax.scan(lambda s, x: step(s, x), state0, xs, length=length)


@_checkpointed_scan.def_fwd
def _checkpointed_fwd(perturbed, vjp_arg, length, levels, segments, inner):
    del perturbed, inner
    step, state0, xs = vjp_arg
    n, k, main = _split(length, levels, segments)

    # Segments read their inputs with a dynamic slice of the whole xs rather than a
    # reshaped copy, so a T that is not a multiple of k costs no O(T) buffer.
    def segment(carry, i):
        xs_seg = jtu.tree_map(lambda a: jax.lax.dynamic_slice_in_dim(a, i * k, k), xs)
        final, outs = jax.lax.scan(lambda s, x: step(s, x), carry, xs_seg, length=k)
        return final, (outs, carry)

    state, (outs, entries) = jax.lax.scan(segment, state0, jnp.arange(n), unroll=_UNROLL_SEGMENTS)
    outs = jtu.tree_map(lambda a: a.reshape(main, *a.shape[2:]), outs)
    rest_entry = state
    if main < length:
        state, outs_rest = jax.lax.scan(
            lambda s, x: step(s, x), state, _slice(xs, main, length), length=length - main
        )
        outs = jtu.tree_map(lambda a, b: jnp.concatenate([a, b]), outs, outs_rest)
    return (state, outs), (entries, rest_entry)


@_checkpointed_scan.def_bwd
def _checkpointed_bwd(res, grad_obj, perturbed, vjp_arg, length, levels, segments, inner):
    entries, rest_entry = res
    step, state0, xs = vjp_arg
    want_xs = any(jtu.tree_leaves(perturbed[2]))
    n, k, main = _split(length, levels, segments)
    g_final, g_outs = grad_obj
    lam = _materialise(g_final, state0)
    out_like = jax.eval_shape(lambda: step(state0, _first(xs))[1])
    out_like = jtu.tree_map(lambda a: jax.ShapeDtypeStruct((length, *a.shape), a.dtype), out_like)
    g_outs = _materialise(g_outs, out_like)
    diff_step, static_step = eqx.partition(step, _is_diff)

    def segment_vjp(entry, lam, xs_seg, g_out_seg, steps):
        def f(p, c, xs_seg):
            return _inner_scan(eqx.combine(p, static_step), c, xs_seg, steps, levels - 1, inner)

        def recompute_and_vjp(entry, lam, xs_seg, g_out_seg):
            if want_xs:
                _, vjp_fn = eqx.filter_vjp(f, diff_step, entry, xs_seg)
                dp, dc, dxs = vjp_fn((lam, g_out_seg))
            else:
                _, vjp_fn = eqx.filter_vjp(lambda p, c: f(p, c, xs_seg), diff_step, entry)
                (dp, dc), dxs = vjp_fn((lam, g_out_seg)), None
            return _materialise(dc, entry), dp, dxs

        # The recomputation must wait for the cotangent of its segment: a compiler that
        # unrolls the loop over segments (XLA's GPU pipeline may) could otherwise hoist
        # every segment's recomputation ahead of the backward pass and keep all their
        # residuals alive at once (O(T) memory). An optimization barrier does not keep
        # that order (XLA expands it away before scheduling); a branch on a value of the
        # cotangent does. Both branches are the same computation.
        pred = _finite_flag(lam)
        return jax.lax.cond(
            pred, recompute_and_vjp, recompute_and_vjp, entry, lam, xs_seg, g_out_seg
        )

    g_step = jtu.tree_map(jnp.zeros_like, diff_step)
    g_xs_rest = None
    if main < length:
        lam, g_step, g_xs_rest = segment_vjp(
            rest_entry, lam, _slice(xs, main, length), _slice(g_outs, main, length), length - main
        )

    def body(carry, inp):
        lam, g_step = carry
        entry, i = inp
        cut = lambda a: jax.lax.dynamic_slice_in_dim(a, i * k, k)
        lam, dp, dxs = segment_vjp(entry, lam, jtu.tree_map(cut, xs), jtu.tree_map(cut, g_outs), k)
        return (lam, _add(g_step, dp)), dxs

    (lam, g_step), g_xs = jax.lax.scan(
        body, (lam, g_step), (entries, jnp.arange(n)), reverse=True, unroll=_UNROLL_SEGMENTS
    )
    if want_xs:
        g_xs = jtu.tree_map(lambda a: a.reshape(main, *a.shape[2:]), g_xs)
        if g_xs_rest is not None:
            g_xs = jtu.tree_map(lambda a, b: jnp.concatenate([a, b]), g_xs, g_xs_rest)
    else:
        g_xs = jtu.tree_map(lambda _: None, xs)
    return (g_step, lam, g_xs)


class Truncated(AbstractGradient):
    """Truncated BPTT: gradients flow back through at most `length` steps.

    The steps are cut into consecutive blocks of `length` (the last may be shorter);
    the state entering each block after the first is treated as a constant
    (`stop_gradient`), so the gradient of anything computed in a block reaches only that
    block's inputs and its steps' parameters (and `state0`, for the first block) -- the
    TBPTT(k, k) of recurrent-network training. The forward values are unchanged; with
    `length >= T` it is BPTT. This is an approximation by design: it removes long-range
    credit assignment (and with it gradients that explode in chaotic systems).

    **Arguments:**

    - `length`: the block length k >= 1.
    """

    length: int

    def __check_init__(self):
        if not isinstance(self.length, int) or self.length < 1:
            raise ValueError(f"Truncated: length must be an int >= 1, got {self.length!r}")

    def scan(self, step, state0, xs, length):
        k = min(self.length, length)
        n = length // k
        main = n * k
        # The first block keeps its gradient to state0; later blocks start from a constant.
        state, outs = jax.lax.scan(step, state0, _slice(xs, 0, k), length=k)
        parts = [outs]

        def block(carry, i):
            carry = jax.lax.stop_gradient(carry)
            xs_block = jtu.tree_map(lambda a: jax.lax.dynamic_slice_in_dim(a, i * k, k), xs)
            return jax.lax.scan(step, carry, xs_block, length=k)

        if n > 1:
            state, outs = jax.lax.scan(block, state, jnp.arange(1, n))
            parts.append(jtu.tree_map(lambda a: a.reshape((n - 1) * k, *a.shape[2:]), outs))
        if main < length:
            state, outs = jax.lax.scan(
                step, jax.lax.stop_gradient(state), _slice(xs, main, length), length=length - main
            )
            parts.append(outs)
        if len(parts) == 1:
            return state, parts[0]
        return state, jtu.tree_map(lambda *a: jnp.concatenate(a), *parts)


class DiscreteAdjoint(AbstractGradient):
    """The costate (adjoint) recursion written out, as a custom VJP.

    The forward pass stores the state entering each step (not the step's internals);
    the backward pass runs, in a reverse scan,

        lambda_t = (d step / d s_t)^T lambda_{t+1} + (d out_t / d s_t)^T g_t,

    using `jax.vjp` of one step, and accumulates the parameter gradient
    sum_t (d step / d theta)^T lambda_{t+1}. It equals BPTT exactly in exact
    arithmetic (1e-12 relative in float64 in the tests).
    """

    def scan(self, step, state0, xs, length):
        step_cc = _convert(step, state0, _first(xs))
        return _adjoint_scan((step_cc, state0, xs), length)


class ForwardSensitivity(AbstractGradient):
    """Exact gradients by forward-mode sensitivities carried through the forward pass.

    Next to the state, the scan carries its Jacobian S_t = d s_t / d theta with respect
    to every differentiated input theta (the step's closed-over arrays and the initial
    state that the caller differentiates), updated each step by a batch of JVPs,
    S_{t+1} = (d step / d s) S_t + d step / d theta, all in the forward loop: nothing runs
    backwards. The backward pass is a contraction: dL/dtheta = S_T^T dL/ds_T +
    sum_t (d out_t / d theta)^T dL/d out_t. It equals BPTT up to floating-point
    reassociation.

    Cost: about P + 1 forward passes' arithmetic for P differentiated numbers, fused into
    the forward loop; memory: P times the state (O(1) in T), plus P times each step's
    output if the outputs are used. For small states with few parameters it is the
    fastest exact mode: XLA on the CPU runs the forward loop as one fused kernel but a
    reverse loop as dozens of small ones: for the gradient of a Lorenz trajectory (3
    parameters, RK4, float64) `Checkpointed` took 21x the forward at 1e3 steps and 356x at
    1e4, this 3x and 10x, in 1 KB at any length. For a neural network's weights (P in the
    thousands) use `BPTT`, `Checkpointed` or `DiscreteAdjoint`.

    **Raises:** `ValueError` when the rollout's inputs `xs` are differentiated (one
    sensitivity per step and input; use `DiscreteAdjoint()`).

    **Example:**

    ```python
    loss = lambda a: jnp.sum(rollout(lambda y, _: (rk4(y, a), None), y0, length=1000,
                                     grad=ForwardSensitivity())[0])
    jax.grad(loss)(args)   # = jax.grad of the plain scan
    ```
    """

    def scan(self, step, state0, xs, length):
        step_cc = _convert(step, state0, _first(xs))
        return _sensitivity_scan((step_cc, state0, xs), length)


class Reversible(AbstractGradient):
    """O(1)-memory gradients for exactly invertible steps.

    The backward pass rebuilds each state from the next one with `inverse` and then
    takes the VJP of one step there, so nothing is stored but the final state. Exact
    up to the round-off of running the step backwards (leapfrog / velocity Verlet,
    reversible Heun).

    **Arguments:**

    - `inverse`: `state = inverse(next_state, x)`, the inverse of the step taken on the
      same input `x`.
    """

    inverse: Callable

    def __check_init__(self):
        if not callable(self.inverse):
            raise ValueError(
                f"Reversible: inverse must be a function (next_state, x) -> state, "
                f"got {self.inverse!r}"
            )

    def scan(self, step, state0, xs, length):
        x0 = _first(xs)
        step_cc = _convert(step, state0, x0)
        inverse_cc = _convert(self.inverse, state0, x0)
        return _reversible_scan((step_cc, state0, xs, inverse_cc), length)


def rollout(
    step: Step,
    state0: PyTree,
    xs: PyTree = None,
    *,
    length: int | None = None,
    grad: AbstractGradient = BPTT(),
) -> tuple[PyTree, PyTree]:
    """Gives the final state and the stacked per-step outputs of a step run over time.

    **Arguments:**

    - `step`: `(state, x) -> (state, out)`; any pytrees, parameters closed over.
    - `state0`: the initial state (any pytree of arrays).
    - `xs`: per-step inputs, a pytree whose leaves share a leading axis of length T;
      or `None` with `length`.
    - `length`: the number of steps T when `xs` is `None` (checked against `xs` otherwise).
    - `grad`: how reverse mode differentiates the rollout: `BPTT()`, `Checkpointed()`,
      `DiscreteAdjoint()`, `ForwardSensitivity()` (small states, few parameters),
      `Reversible(inverse)` or `Truncated(k)` (approximate).

    **Returns:** `(final_state, outs)` where every leaf of `outs` has leading axis T.

    **Raises:** `ValueError` if T cannot be determined, is negative, or the leaves of
    `xs` disagree on it, or `state0` holds NaN; `TypeError` if `grad` is not a gradient
    strategy.

    **Example:**

    ```python
    step = lambda h, x: (h + 0.1 * jnp.tanh(W @ h + x), h)
    h_T, hs = rollout(step, h0, xs, grad=Checkpointed())
    ```
    """
    if not isinstance(grad, AbstractGradient):
        raise TypeError(
            f"rollout: grad must be a gradient strategy such as BPTT() or Checkpointed(), "
            f"got {grad!r}"
        )
    length = _length(xs, length)
    # Python scalars in the state become arrays, as lax.scan would make them; integer
    # leaves (counters, neighbour indices, keys) carry no derivative.
    state0 = stop_int_gradients(jtu.tree_map(jnp.asarray, state0))
    if is_concrete(state0):  # traced states may carry NaN on purpose (unreached slots)
        check_finite(state0, "rollout: state0", nan_only=True)
    xs = stop_int_gradients(xs)
    if length == 0:
        return state0, None
    return grad.scan(step, state0, xs, length)


def costates(
    step: Step,
    state0: PyTree,
    xs: PyTree = None,
    *,
    final_cotangent: PyTree,
    out_cotangents: PyTree = None,
    length: int | None = None,
):
    """Gives the costates lambda_t = dL/ds_t of a rollout by the explicit adjoint recursion.

    For a loss L(s_T, out_0..out_{T-1}) with `final_cotangent` = dL/ds_T and
    `out_cotangents[t]` = dL/dout_t, returns `(lambdas, step_grad, xs_grad)` where
    `lambdas` stacks lambda_0..lambda_T (leading axis T + 1), `step_grad` is dL/d(the
    step's closed-over arrays) as a pytree shaped like `eqx.filter_closure_convert(step)`,
    and `xs_grad[t]` = dL/dx_t. `lambdas[0]` is dL/ds_0, equal to `jax.grad`.
    """
    length = _length(xs, length)
    if length == 0:
        raise ValueError("costates: the rollout has no steps (length 0)")
    step_cc = _convert(step, state0, _first(xs))

    def body(s, x):
        s2, out = step_cc(s, x)
        return s2, (out, s)

    final, (outs, states) = jax.lax.scan(body, state0, xs, length=length)
    if out_cotangents is None:
        out_cotangents = jtu.tree_map(jnp.zeros_like, outs)
    lam0, g_step, g_xs, lams = _reverse_recursion(
        step_cc, states, xs, final_cotangent, out_cotangents, length, keep=True
    )
    lam_final = _materialise(final_cotangent, final)
    lambdas = jtu.tree_map(lambda a, b: jnp.concatenate([a, b[None]]), lams, lam_final)
    return lambdas, g_step, g_xs


# --- internals ---------------------------------------------------------------------


def _length(xs, length):
    leaves = jtu.tree_leaves(xs)
    if not leaves:
        if length is None:
            raise ValueError("rollout: pass xs with a leading time axis, or length=T")
        n = length
    else:
        sizes = {jnp.shape(a)[0] if jnp.ndim(a) > 0 else None for a in leaves}
        if None in sizes:
            raise ValueError("rollout: every leaf of xs needs a leading time axis; got a scalar")
        if len(sizes) != 1:
            raise ValueError(
                "rollout: leaves of xs disagree on the number of steps: "
                f"{sorted(s for s in sizes if s is not None)}"
            )
        (n,) = sizes
        if length is not None and length != n:
            raise ValueError(f"rollout: length={length} but xs has {n} steps")
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"rollout: length must be a non-negative int, got {n!r}")
    return n


def _convert(fn, *args):
    """Closure-converts `fn` so its closed-over arrays become explicit, differentiable leaves."""
    return strong_types(stop_int_gradients(eqx.filter_closure_convert(fn, *args)))


def _first(xs):
    return jtu.tree_map(lambda a: a[0], xs)


def _is_diff(x):
    return isinstance(x, (jax.Array, jax.ShapeDtypeStruct, np.ndarray)) and jnp.issubdtype(
        x.dtype, jnp.inexact
    )


def _materialise(ct, primal):
    """Cotangent with zeros for missing inexact leaves and None for the rest."""
    leaves, treedef = jtu.tree_flatten(primal)
    cts = treedef.flatten_up_to(ct) if ct is not None else [None] * len(leaves)
    out = []
    for p, c in zip(leaves, cts):
        if _is_diff(p):
            out.append(jnp.zeros(p.shape, p.dtype) if c is None else jnp.asarray(c, p.dtype))
        else:
            out.append(None)
    return jtu.tree_unflatten(treedef, out)


def _add(a, b):
    return jtu.tree_map(lambda x, y: x + y, a, b)


def _step_vjp(step, s, x, cot):
    """(dL/ds, dL/dstep, dL/dx) for one step given the cotangent of (next state, out)."""
    diff_step, static_step = eqx.partition(step, _is_diff)

    def f(p, s, x):
        return eqx.combine(p, static_step)(s, x)

    _, vjp_fn = eqx.filter_vjp(f, diff_step, s, x)
    dp, ds, dx = vjp_fn(cot)
    return ds, dp, dx


def _reverse_recursion(step, states, xs, g_final, g_outs, length, keep=False):
    s_T_like = _first(states)
    lam = _materialise(g_final, s_T_like)
    diff_step = eqx.filter(step, _is_diff)
    g_step = jtu.tree_map(jnp.zeros_like, diff_step)
    g_outs = _materialise(g_outs, jax.eval_shape(lambda: _outs_like(step, states, xs)))

    def body(carry, inp):
        lam, g_step = carry
        s, x, g_out = inp
        ds, dp, dx = _step_vjp(step, s, x, (lam, g_out))
        ds = _materialise(ds, s)
        return (ds, _add(g_step, dp)), ((dx, lam) if keep else dx)

    (lam0, g_step), ys = jax.lax.scan(
        body, (lam, g_step), (states, xs, g_outs), length=length, reverse=True
    )
    if keep:
        g_xs, lams_next = ys
        # lams_next[t] is lambda_{t+1}; lambda_t for t < T is lams shifted by one.
        lams = jtu.tree_map(lambda l0, ln: jnp.concatenate([l0[None], ln[:-1]]), lam0, lams_next)
        return lam0, g_step, g_xs, lams
    return lam0, g_step, ys, None


def _outs_like(step, states, xs):
    return jax.vmap(lambda s, x: step(s, x)[1])(states, xs)


@eqx.filter_custom_vjp
def _adjoint_scan(vjp_arg, length):
    step, state0, xs = vjp_arg
    return jax.lax.scan(lambda s, x: step(s, x), state0, xs, length=length)


@_adjoint_scan.def_fwd
def _adjoint_fwd(perturbed, vjp_arg, length):
    del perturbed
    step, state0, xs = vjp_arg

    def body(s, x):
        s2, out = step(s, x)
        return s2, (out, s)

    final, (outs, states) = jax.lax.scan(body, state0, xs, length=length)
    return (final, outs), states


@_adjoint_scan.def_bwd
def _adjoint_bwd(states, grad_obj, perturbed, vjp_arg, length):
    del perturbed
    step, _, xs = vjp_arg
    g_final, g_outs = grad_obj
    lam0, g_step, g_xs, _ = _reverse_recursion(step, states, xs, g_final, g_outs, length)
    return (g_step, lam0, g_xs)


@eqx.filter_custom_vjp
def _reversible_scan(vjp_arg, length):
    step, state0, xs, _ = vjp_arg
    return jax.lax.scan(lambda s, x: step(s, x), state0, xs, length=length)


@_reversible_scan.def_fwd
def _reversible_fwd(perturbed, vjp_arg, length):
    del perturbed
    step, state0, xs, _ = vjp_arg
    final, outs = jax.lax.scan(lambda s, x: step(s, x), state0, xs, length=length)
    return (final, outs), final


@_reversible_scan.def_bwd
def _reversible_bwd(final, grad_obj, perturbed, vjp_arg, length):
    del perturbed
    # The inverse only rebuilds states; the gradient flows through the step alone.
    step, _, xs, inverse = vjp_arg
    g_final, g_outs = grad_obj
    lam = _materialise(g_final, final)
    g_step = jtu.tree_map(jnp.zeros_like, eqx.filter(step, _is_diff))
    out_like = jax.eval_shape(lambda: step(final, _first(xs))[1])
    out_like = jtu.tree_map(lambda a: jax.ShapeDtypeStruct((length, *a.shape), a.dtype), out_like)
    g_outs = _materialise(g_outs, out_like)

    def body(carry, inp):
        s_next, lam, g_step = carry
        x, g_out = inp
        s = inverse(s_next, x)
        ds, dp, dx = _step_vjp(step, s, x, (lam, g_out))
        return (s, _materialise(ds, s), _add(g_step, dp)), dx

    (_, lam0, g_step), g_xs = jax.lax.scan(
        body, (final, lam, g_step), (xs, g_outs), length=length, reverse=True
    )
    g_inverse = jtu.tree_map(jnp.zeros_like, eqx.filter(inverse, eqx.is_inexact_array))
    return (g_step, lam0, g_xs, g_inverse)


@eqx.filter_custom_vjp
def _sensitivity_scan(vjp_arg, length):
    step, state0, xs = vjp_arg
    return jax.lax.scan(lambda s, x: step(s, x), state0, xs, length=length)


def _perturbed_part(tree, perturbed):
    """The differentiated leaves of `tree` (None elsewhere), and the rest."""
    mask = jtu.tree_map(lambda p, a: bool(p) and _is_diff(a), perturbed, tree)
    return eqx.partition(tree, mask)


@_sensitivity_scan.def_fwd
def _sensitivity_fwd(perturbed, vjp_arg, length):
    step, state0, xs = vjp_arg
    p_step, p_state0, p_xs = perturbed
    if any(jtu.tree_leaves(p_xs)):
        raise ValueError(
            "rollout: ForwardSensitivity() gives no gradient with respect to xs (it would "
            "need one sensitivity per step and input); use DiscreteAdjoint() or BPTT()"
        )
    step_p, step_rest = _perturbed_part(step, p_step)
    s0_p, _ = _perturbed_part(state0, p_state0)
    theta, unravel = jax.flatten_util.ravel_pytree((step_p, s0_p))
    n_theta = theta.shape[0]
    # Column i of the identity, as a tangent of (step_p, s0_p): the sensitivity basis.
    d_step, d_s0 = jax.vmap(unravel)(jnp.eye(n_theta, dtype=theta.dtype))
    s0_d, _ = eqx.partition(state0, _is_diff)
    # The state's differentiable leaves that start unperturbed start with zero sensitivity.
    S0 = jtu.tree_map(
        lambda a, d: d if d is not None or a is None else jnp.zeros((n_theta, *a.shape), a.dtype),
        s0_d,
        d_s0,
        is_leaf=lambda v: v is None,
    )

    def body(carry, x):
        s, S = carry
        s_d, s_nd = eqx.partition(s, _is_diff)

        def f(s_d, step_p):
            s2, out = eqx.combine(step_p, step_rest)(eqx.combine(s_d, s_nd), x)
            s2_d, s2_nd = eqx.partition(s2, _is_diff)
            out_d, out_nd = eqx.partition(out, _is_diff)
            return (s2_d, out_d), (s2_nd, out_nd)

        def jvp(S_i, d_i):
            return jax.jvp(f, (s_d, step_p), (S_i, d_i), has_aux=True)

        (s2_d, out_d), (S2, D), (s2_nd, out_nd) = jax.vmap(jvp, out_axes=(None, 0, None))(S, d_step)
        return (eqx.combine(s2_d, s2_nd), S2), (eqx.combine(out_d, out_nd), D)

    (final, S_T), (outs, D) = jax.lax.scan(body, (state0, S0), xs, length=length)
    return (final, outs), (S_T, D)


def _contract(sens, cot, batch_dims):
    """sum over leaves of <sens[..., i, :], cot>: the gradient in theta (length P)."""
    total = 0.0
    is_none = lambda v: v is None
    for a, c in zip(jtu.tree_leaves(sens, is_leaf=is_none), jtu.tree_leaves(cot, is_leaf=is_none)):
        if a is None or c is None:
            continue
        a = a.reshape(*a.shape[: batch_dims + 1], -1)
        c = jnp.asarray(c, a.dtype).reshape(*c.shape[:batch_dims], 1, -1)
        total = total + jnp.sum(a * c, axis=tuple(range(batch_dims)) + (a.ndim - 1,))
    return total


@_sensitivity_scan.def_bwd
def _sensitivity_bwd(res, grad_obj, perturbed, vjp_arg, length):
    S_T, D = res
    step, state0, xs = vjp_arg
    p_step, p_state0, _ = perturbed
    step_p, _ = _perturbed_part(step, p_step)
    s0_p, _ = _perturbed_part(state0, p_state0)
    theta, unravel = jax.flatten_util.ravel_pytree((step_p, s0_p))
    g_final, g_outs = grad_obj
    g = jnp.zeros_like(theta) + _contract(S_T, g_final, 0) + _contract(D, g_outs, 1)
    g_step, g_s0 = unravel(g.astype(theta.dtype))
    return (g_step, g_s0, jtu.tree_map(lambda _: None, xs))
