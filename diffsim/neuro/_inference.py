"""Inference in predictive coding networks: gradient descent of the energy on the values."""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

import diffsim

from ._network import MLP, Values, derivative


class AbstractInference(eqx.Module):
    """How long inference runs: a strategy value given to `infer`."""

    @abc.abstractmethod
    def run(self, step, state0) -> tuple[Any, Array, Array, Array]:
        """Runs `step(state, None) -> (state, (energy, residual))`; gives
        `(state, energies, iterations, converged)`."""


class FixedIterations(AbstractInference):
    """Exactly `iterations` steps of inference (a `diffsim.rollout`), >= 0."""

    iterations: int

    def __check_init__(self):
        if not isinstance(self.iterations, int) or self.iterations < 0:
            raise ValueError(
                f"FixedIterations: iterations must be an int >= 0, got {self.iterations!r}"
            )

    def run(self, step, state0):
        n = jnp.asarray(self.iterations)
        if self.iterations == 0:
            return state0, jnp.zeros((0,)), n, jnp.asarray(True)
        state, (energies, _) = diffsim.rollout(step, state0, length=self.iterations)
        return state, energies, n, jnp.asarray(True)


class UntilConverged(AbstractInference):
    """Inference until the largest |dF/dx| is below `tol`, checked every `check_every` steps.

    Each chunk of `check_every` steps is a `diffsim.rollout`; the chunks run in a
    `lax.while_loop` (so reverse-mode differentiation through it is not available; PC
    does not need it). Stops after `max_iterations` (rounded up to whole chunks): then
    `converged` is False, and with `throw=True` an `eqx.error_if` raises.
    """

    tol: float = 1e-6
    max_iterations: int = 10_000
    check_every: int = 10
    throw: bool = True

    def __check_init__(self):
        if not self.tol > 0:
            raise ValueError(f"UntilConverged: tol must be > 0, got {self.tol!r}")
        for name in ("max_iterations", "check_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"UntilConverged: {name} must be an int >= 1, got {v!r}")

    def run(self, step, state0):
        def chunk(carry):
            state, _, n = carry
            state, (_, residuals) = diffsim.rollout(step, state, length=self.check_every)
            return state, residuals[-1], n + self.check_every

        def cond(carry):
            _, residual, n = carry
            return (residual >= self.tol) & (n < self.max_iterations)

        _, (e0, r0) = step(state0, None)
        state, residual, n = jax.lax.while_loop(cond, chunk, (state0, r0, jnp.asarray(0)))
        converged = residual < self.tol
        if self.throw:
            state, n = eqx.error_if(
                (state, n),
                ~converged,
                "UntilConverged: inference did not converge within max_iterations",
            )
        energy = step(state, None)[1][0]
        return state, jnp.stack([e0, energy]), n, converged


class Inference(NamedTuple):
    """What `infer` gives: the settled network state."""

    values: Values
    """`(x_0, ..., x_L)`: input and output clamped, hidden values settled."""
    errors: Values
    """`(e_1, ..., e_L)` at the settled values."""
    energies: Float[Array, " t"]
    """F before each iteration (`FixedIterations`), or F at the start and end."""
    iterations: Int[Array, ""]
    converged: Bool[Array, ""]


def max_abs(arrays) -> Float[Array, ""]:
    """Gives the largest |entry| over a sequence of arrays (0 for none): the residual."""
    if not arrays:
        return jnp.asarray(0.0)
    return jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in arrays]))


def _check_rate(rate):
    if isinstance(rate, int | float) and not rate > 0:
        raise ValueError(f"infer: rate must be > 0, got {rate!r}")


def _check_batch(net, x, y):
    n0, nL = net.sizes[0], net.sizes[-1]
    if x.ndim != 2 or x.shape[1] != n0:
        raise ValueError(f"x must have shape (batch, {n0}), got {x.shape}")
    if y.ndim != 2 or y.shape != (x.shape[0], nL):
        raise ValueError(f"y must have shape ({x.shape[0]}, {nL}), got {y.shape}")


def value_gradients(
    net: MLP, values: Values, output_precision: float | Float[Array, ""] = 1.0
) -> Values:
    """Gives dF/dx_l for the hidden layers l = 1..L-1, from local quantities only.

    F = 1/2 sum_{l<L} ||e_l||^2 + pi/2 ||e_L||^2 with pi = `output_precision`, and
    dF/dx_l = eps_l - f'(x_l) * (W_{l+1}^T eps_{l+1}) with eps the precision-weighted
    errors: the neuron's own error, and the errors of the layer above fed back through
    the same synapses (Whittington & Bogacz 2017). Equals `jax.grad` of F (tested).
    """
    eps = _weighted(net.errors(values), output_precision)
    grads = []
    for l in range(1, len(net.layers)):
        above = net.layers[l]
        fp = derivative(above.activation, values[l])
        grads.append(eps[l - 1] - fp * (eps[l] @ above.weight))
    return tuple(grads)


def _weighted(errs, output_precision):
    return (*errs[:-1], output_precision * errs[-1])


@eqx.filter_jit
def infer(
    net: MLP,
    x: Float[Array, "batch n0"],
    y: Float[Array, "batch nL"],
    *,
    rate: float | Float[Array, ""] = 0.1,
    inference: AbstractInference = FixedIterations(20),
    output_precision: float | Float[Array, ""] = 1.0,
) -> Inference:
    """Gives the values a predictive coding network settles to with input and target clamped.

    Hidden values start at the feedforward pass (so only the output error is non-zero)
    and follow x_l <- x_l - rate * dF/dx_l (`value_gradients`), a `diffsim.rollout`.

    **Arguments:**

    - `net`: the network; `x` `(batch, n_0)` input; `y` `(batch, n_L)` target.
    - `rate`: the inference rate (step size), > 0.
    - `inference`: `FixedIterations(n)` or `UntilConverged(tol)`.
    - `output_precision`: pi > 0, the weight of the output error in F (the inverse
      variance of the output layer). As pi -> 0 the settled errors divided by pi tend to
      backprop's -dL/dmu_l (Whittington & Bogacz 2017): the lower layers move little,
      so the errors they pass down are those of the feedforward pass.

    **Returns:** an `Inference`; its `errors` are the precision-weighted errors (the
    output error times pi), the quantities the error neurons carry.

    **Raises:** `ValueError` for bad shapes, a rate <= 0 or a precision <= 0.

    **Example:**

    ```python
    s = infer(net, x, y, rate=0.1, inference=UntilConverged(1e-8))
    dnet = local_updates(net, s.values[:-1], s.errors)
    ```
    """
    _check_rate(rate)
    _check_batch(net, x, y)
    if isinstance(output_precision, int | float) and not output_precision > 0:
        raise ValueError(f"infer: output_precision must be > 0, got {output_precision!r}")
    ff = net.activities(x)

    def step(hidden, _):
        values = (x, *hidden, y)
        grads = value_gradients(net, values, output_precision)
        residual = max_abs(grads)
        new = tuple(h - rate * g for h, g in zip(hidden, grads))
        return new, (net.energy(values, output_precision), residual)

    hidden, energies, n, converged = inference.run(step, ff[1:-1])
    hidden, y = eqx.error_if(
        (hidden, y),
        ~jnp.all(jnp.stack([jnp.all(jnp.isfinite(h)) for h in (y, *hidden)])),
        "infer: the values became non-finite (inference rate too large?)",
    )
    values = (x, *hidden, y)
    errors = _weighted(net.errors(values), output_precision)
    return Inference(values, errors, energies, n, converged)


@eqx.filter_jit
def infer_fixed_prediction(
    net: MLP,
    x: Float[Array, "batch n0"],
    y: Float[Array, "batch nL"],
    *,
    rate: float | Float[Array, ""] = 1.0,
    inference: AbstractInference | None = None,
) -> Inference:
    """Gives PC inference under the fixed-prediction assumption (Millidge et al. 2022).

    The predictions mu_l and the derivatives f'(x_l) are held at their feedforward
    values; errors e_l = x_l - mu_l relax by x_l <- x_l - rate (e_l - f'(mu_l) W^T e_{l+1}).
    At the fixed point e_l = -dL/dmu_l exactly (L the squared error of `mse_loss` per
    example), so the local updates equal backprop's gradient. With `rate = 1` the error
    reaches layer l after L - l iterations: `inference=None` runs exactly L - 1 and is
    then exact (zero divergence).

    Arguments, returns and raises as `infer`; `values` are the feedforward values with the
    output clamped, and `errors` the settled errors.
    """
    _check_rate(rate)
    _check_batch(net, x, y)
    if inference is None:
        inference = FixedIterations(len(net.layers) - 1)
    ff = net.activities(x)
    mus = ff[1:]
    fps = [derivative(net.layers[l].activation, ff[l]) for l in range(1, len(net.layers))]
    e_out = y - mus[-1]

    def step(hidden, _):
        errs = [h - m for h, m in zip(hidden, mus[:-1])] + [e_out]
        grads = [
            errs[l - 1] - fps[l - 1] * (errs[l] @ net.layers[l].weight)
            for l in range(1, len(net.layers))
        ]
        residual = max_abs(grads)
        energy = 0.5 * sum(jnp.sum(e**2) for e in errs)
        return tuple(h - rate * g for h, g in zip(hidden, grads)), (energy, residual)

    hidden, energies, n, converged = inference.run(step, tuple(mus[:-1]))
    errs = tuple(h - m for h, m in zip(hidden, mus[:-1])) + (e_out,)
    return Inference((x, *mus[:-1], y), errs, energies, n, converged)


@eqx.filter_jit
def zero_divergence_signals(
    net: MLP, x: Float[Array, "batch n0"], y: Float[Array, "batch nL"]
) -> tuple[Values, Values]:
    """Gives the (pre, err) of each layer under zero-divergence inference (Song et al. 2020).

    Ordinary PC inference (`infer`) from the feedforward values with rate 1, where layer
    l (1-based) reads its presynaptic value and error at iteration t = L - l: the moment
    the output error first reaches it. Its Hebbian update then equals backprop's exactly.

    **Returns:** `(pres, errs)`, one `(batch, .)` array per layer, for `local_updates`.
    """
    _check_batch(net, x, y)
    L = len(net.layers)

    def step(hidden, _):
        values = (x, *hidden, y)
        new = tuple(h - g for h, g in zip(hidden, value_gradients(net, values)))
        return new, new

    hidden0 = net.activities(x)[1:-1]
    _, trace = diffsim.rollout(step, hidden0, length=L - 1)
    # states[t] = hidden values after t iterations, t = 0..L-1
    states = [hidden0] + [tuple(h[t] for h in trace) for t in range(L - 1)]
    pres, errs = [], []
    for l in range(1, L + 1):
        values = (x, *states[L - l], y)
        pres.append(values[l - 1])
        errs.append(values[l] - net.layers[l - 1](values[l - 1]))
    return tuple(pres), tuple(errs)
