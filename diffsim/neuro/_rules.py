"""Credit-assignment rules: where each layer's error comes from.

Every rule ends in the same local Hebbian update, `local_updates(net, pres, errs)`:
layer l changes by outer(err_l, f(pre_l)). The rules differ only in how err_l is formed:
backprop transports the forward weights, predictive coding lets value and error neurons
settle, feedback alignment uses fixed random feedback weights.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._inference import (
    AbstractInference,
    FixedIterations,
    infer,
    infer_fixed_prediction,
    zero_divergence_signals,
)
from ._network import MLP, Values, derivative, local_updates, mse_loss


class AbstractRule(eqx.Module):
    """A credit-assignment rule: gives each layer's presynaptic value and error."""

    @abc.abstractmethod
    def signals(self, net: MLP, x, y) -> tuple[Values, Values]:
        """Gives `(pres, errs)`: per layer, `(batch, n_in)` and `(batch, n_out)` arrays.

        `errs` approximate -dL/dmu_l for the loss `mse_loss`.
        """


def _output_error(net, x, y):
    values = net.activities(x)
    return values, y - values[-1]


class Backprop(AbstractRule):
    """Backpropagation: errors sent back through the transposed forward weights.

    err_L = y - x_L, err_l = f'(x_l) * (W_{l+1}^T err_{l+1}): its update is exactly
    `-jax.grad(mse_loss)` (tested).
    """

    def signals(self, net, x, y):
        values, e = _output_error(net, x, y)
        errs = [e]
        for l in range(len(net.layers) - 1, 0, -1):
            above = net.layers[l]
            errs.insert(0, derivative(above.activation, values[l]) * (errs[0] @ above.weight))
        return values[:-1], tuple(errs)


class PredictiveCoding(AbstractRule):
    """Predictive coding (Whittington & Bogacz 2017): errors after inference settles.

    **Arguments:** `rate` (inference rate, > 0), `inference` (`FixedIterations(n)` or
    `UntilConverged(tol)`), `output_precision` (pi > 0, the weight of the output error
    in the energy; the errors are divided by pi, a global learning-rate factor; pi = 1 is
    plain PC, pi -> 0 tends to backprop).
    """

    rate: float | Float[Array, ""] = 0.1
    inference: AbstractInference = FixedIterations(20)
    output_precision: float | Float[Array, ""] = 1.0

    def signals(self, net, x, y):
        pi = self.output_precision
        s = infer(net, x, y, rate=self.rate, inference=self.inference, output_precision=pi)
        return s.values[:-1], tuple(e / pi for e in s.errors)


class FixedPredictionPC(AbstractRule):
    """Predictive coding under the fixed-prediction assumption (Millidge et al. 2022).

    With the defaults (rate 1, L - 1 iterations) its update equals backprop's exactly;
    with other rates/iterations it converges to it. See `infer_fixed_prediction`.
    """

    rate: float | Float[Array, ""] = 1.0
    inference: AbstractInference | None = None

    def signals(self, net, x, y):
        s = infer_fixed_prediction(net, x, y, rate=self.rate, inference=self.inference)
        return s.values[:-1], s.errors


class ZeroDivergencePC(AbstractRule):
    """Zero-divergence inference learning (Song et al. 2020): ordinary PC inference at
    rate 1, each layer updated at the iteration its error arrives. Exactly backprop."""

    def signals(self, net, x, y):
        return zero_divergence_signals(net, x, y)


def _uniform_like(key, shape, fan_in, dtype):
    bound = 1.0 / fan_in**0.5
    return jax.random.uniform(key, shape, dtype, -bound, bound)


class FeedbackAlignment(AbstractRule):
    """Feedback alignment (Lillicrap et al. 2016): errors sent back through fixed random
    matrices B_{l+1} in place of W_{l+1}^T.

    **Arguments:** `net` (for the shapes and dtype), `key` (keyword-only).
    """

    feedback: tuple[Float[Array, "out in"], ...]

    def __init__(self, net: MLP, *, key):
        layers = net.layers[1:]
        keys = jax.random.split(key, max(len(layers), 1))
        self.feedback = tuple(
            _uniform_like(k, la.weight.shape, la.weight.shape[1], la.weight.dtype)
            for k, la in zip(keys, layers)
        )

    def signals(self, net, x, y):
        values, e = _output_error(net, x, y)
        errs = [e]
        for l in range(len(net.layers) - 1, 0, -1):
            fp = derivative(net.layers[l].activation, values[l])
            errs.insert(0, fp * (errs[0] @ self.feedback[l - 1]))
        return values[:-1], tuple(errs)


class DirectFeedbackAlignment(AbstractRule):
    """Direct feedback alignment (Nokland 2016): every hidden layer receives the output
    error through its own fixed random matrix D_l, err_l = f'(x_l) * (D_l err_L).

    **Arguments:** `net` (for the shapes and dtype), `key` (keyword-only).
    """

    feedback: tuple[Float[Array, "out hidden"], ...]

    def __init__(self, net: MLP, *, key):
        sizes = net.sizes
        keys = jax.random.split(key, max(len(sizes) - 2, 1))
        dtype = net.layers[0].weight.dtype
        self.feedback = tuple(
            _uniform_like(k, (sizes[-1], n), sizes[-1], dtype) for k, n in zip(keys, sizes[1:-1])
        )

    def signals(self, net, x, y):
        values, e = _output_error(net, x, y)
        errs = []
        for l in range(1, len(net.layers)):
            fp = derivative(net.layers[l].activation, values[l])
            errs.append(fp * (e @ self.feedback[l - 1]))
        return values[:-1], (*errs, e)


@eqx.filter_jit
def rule_gradients(rule: AbstractRule, net: MLP, x, y) -> MLP:
    """Gives the rule's descent direction, shaped like `net`: `-local_updates(signals)`.

    For `Backprop()`, `FixedPredictionPC()` and `ZeroDivergencePC()` this is
    `jax.grad(mse_loss)(net, x, y)`.

    **Example:**

    ```python
    g = rule_gradients(PredictiveCoding(0.1, FixedIterations(50)), net, x, y)
    print(cosine_similarity(g, jax.grad(mse_loss)(net, x, y)))
    ```
    """
    if not isinstance(rule, AbstractRule):
        raise TypeError(f"rule_gradients: rule must be a rule such as Backprop(), got {rule!r}")
    pres, errs = rule.signals(net, x, y)
    return jax.tree.map(jnp.negative, local_updates(net, pres, errs))


def rule_loss(rule: AbstractRule, net: MLP, x, y) -> Float[Array, ""]:
    """Gives `mse_loss(net, x, y)` with `rule_gradients` as its gradient (for `diffsim.fit`).

    The value is the loss; `jax.grad` of it with respect to `net` is the rule's update,
    not the true gradient (a surrogate: loss + g.p - stop_gradient(g.p)), so an optax
    loop that differentiates a loss trains with any local rule.
    """
    net_c = jax.lax.stop_gradient(net)
    g = jax.lax.stop_gradient(rule_gradients(rule, net_c, x, y))
    params, _ = eqx.partition(net, eqx.is_inexact_array)
    gp, _ = eqx.partition(g, eqx.is_inexact_array)
    dot = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(gp)))
    return mse_loss(net_c, x, y) + dot - jax.lax.stop_gradient(dot)


def _flat(tree):
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))
    return jnp.concatenate([jnp.ravel(a) for a in leaves])


def cosine_similarity(a, b) -> Float[Array, ""]:
    """Gives the cosine of the angle between two pytrees of arrays (flattened)."""
    fa, fb = _flat(a), _flat(b)
    return jnp.vdot(fa, fb) / (jnp.linalg.norm(fa) * jnp.linalg.norm(fb))


def relative_error(a, b) -> Float[Array, ""]:
    """Gives ||a - b|| / ||b|| over two pytrees of arrays (b the reference)."""
    fa, fb = _flat(a), _flat(b)
    return jnp.linalg.norm(fa - fb) / jnp.linalg.norm(fb)


def accuracy(net: MLP, x, labels) -> Float[Array, ""]:
    """Gives the fraction of examples whose largest output is at the label."""
    return jnp.mean(jnp.argmax(net(x), axis=-1) == labels)
