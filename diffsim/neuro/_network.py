"""Layered networks with value nodes and error nodes, and their local weight updates."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

Values = tuple[Float[Array, "*batch _"], ...]


def _identity(x):
    return x


def derivative(fn: Callable, x: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """Gives f'(x) of an elementwise function, elementwise (one forward-mode product)."""
    return jax.jvp(fn, (x,), (jnp.ones_like(x),))[1]


class Layer(eqx.Module):
    """One synaptic layer: the prediction mu = W f(pre) + b of the next layer's values.

    `pre` is the presynaptic value node (the previous layer's value, before the
    nonlinearity `activation`, which this layer applies to its input: the identity for
    the first layer, so that `MLP` is an ordinary multilayer perceptron).

    **Arguments:** `weight` `(out, in)`, `bias` `(out,)`, `activation` (elementwise).
    """

    weight: Float[Array, "out in"]
    bias: Float[Array, " out"]
    activation: Callable = eqx.field(static=True)

    def __call__(self, pre: Float[Array, "*batch in"]) -> Float[Array, "*batch out"]:
        """Gives the prediction W f(pre) + b (any leading batch axes)."""
        out = self.activation(pre) @ self.weight.T
        return out + jnp.reshape(self.bias, (1,) * (out.ndim - 1) + self.bias.shape)

    def update(
        self, pre: Float[Array, "*shape"], err: Float[Array, " out"]
    ) -> tuple[Float[Array, "out in"], Float[Array, " out"]]:
        """Gives the local Hebbian change `(dW, db) = (outer(err, f(pre)), err)`.

        The only inputs are this layer's presynaptic value and its postsynaptic error
        (one example): the rule is local by construction. With `err = -dL/dmu` it is the
        negative gradient of the loss L with respect to `(W, b)`.
        """
        return jnp.outer(err, self.activation(pre)), err

    def batch_update(
        self, pre: Float[Array, "batch in"], err: Float[Array, "batch out"]
    ) -> tuple[Float[Array, "out in"], Float[Array, " out"]]:
        """Gives `update` averaged over a batch, as one matrix product (no per-example
        outer products are stored). Equals `jax.vmap(update)` then the mean (tested)."""
        n = pre.shape[0]
        return err.T @ self.activation(pre) / n, jnp.mean(err, axis=0)


class MLP(eqx.Module):
    """A multilayer perceptron as a chain of `Layer`s, with value and error nodes.

    x_0 = input, x_l = mu_l = W_l f_l(x_{l-1}) + b_l in the feedforward pass, with f_1 the
    identity and f_l = `activation` for l > 1; the output layer is linear. The same module
    is trained by backprop (`jax.grad`), predictive coding and feedback alignment.

    **Arguments:**

    - `sizes`: layer widths `[n_0, ..., n_L]`, L >= 1, each >= 1.
    - `activation`: elementwise nonlinearity (default `jnp.tanh`).
    - `key`: PRNG key (keyword-only); weights uniform in +-1/sqrt(fan_in), biases zero.
    - `dtype`: floating dtype of the parameters (default: JAX's default float).

    **Raises:** `ValueError` for fewer than two sizes or a size < 1.

    **Example:**

    ```python
    net = MLP([64, 32, 10], key=jax.random.key(0))
    logits = net(x)                 # x: (batch, 64) -> (batch, 10)
    ```
    """

    layers: tuple[Layer, ...]

    def __init__(self, sizes: Sequence[int], activation: Callable = jnp.tanh, *, key, dtype=None):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"MLP: sizes must be >= 2 positive widths, got {sizes}")
        dtype = dtype or jnp.zeros(()).dtype
        keys = jax.random.split(key, len(sizes) - 1)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            bound = 1.0 / n_in**0.5
            w = jax.random.uniform(keys[i], (n_out, n_in), dtype, -bound, bound)
            layers.append(Layer(w, jnp.zeros(n_out, dtype), _identity if i == 0 else activation))
        self.layers = tuple(layers)

    @property
    def sizes(self) -> list[int]:
        """The layer widths `[n_0, ..., n_L]`."""
        return [self.layers[0].weight.shape[1]] + [la.weight.shape[0] for la in self.layers]

    def __call__(self, x: Float[Array, "*batch n0"]) -> Float[Array, "*batch nL"]:
        """Gives the output x_L of the feedforward pass."""
        return self.activities(x)[-1]

    def activities(self, x: Float[Array, "*batch n0"]) -> Values:
        """Gives the feedforward value nodes `(x_0, ..., x_L)` (x_0 = the input)."""
        values = [x]
        for layer in self.layers:
            values.append(layer(values[-1]))
        return tuple(values)

    def errors(self, values: Values) -> Values:
        """Gives the error nodes `(e_1, ..., e_L)`, e_l = x_l - W_l f(x_{l-1}) - b_l."""
        return tuple(v - layer(p) for layer, p, v in zip(self.layers, values[:-1], values[1:]))

    def energy(
        self, values: Values, output_precision: float | Float[Array, ""] = 1.0
    ) -> Float[Array, ""]:
        """Gives F = 1/2 sum_{l<L} ||e_l||^2 + pi/2 ||e_L||^2, summed over the batch
        (unit precisions in the hidden layers, pi = `output_precision` at the output)."""
        errs = self.errors(values)
        hidden = sum((jnp.sum(e**2) for e in errs[:-1]), jnp.zeros(()))
        return 0.5 * (hidden + output_precision * jnp.sum(errs[-1] ** 2))


def local_updates(net: MLP, pres: Values, errs: Values) -> MLP:
    """Gives every layer's Hebbian change, batch-averaged, shaped like `net`.

    Layer l's change is `net.layers[l].update(pres[l], errs[l])` averaged over the batch
    (`batch_update`): it sees only its own presynaptic values `pres[l]` `(batch, n_l)`
    and errors `errs[l]` `(batch, n_{l+1})`, and no weight of any layer (the test suite
    checks this by perturbing everything else). The result has the structure of `net` with each
    weight and bias replaced by its change, so that `-local_updates(...)` is a gradient
    estimate an optax optimiser can use.

    **Raises:** `ValueError` if the numbers of pres/errs differ from the number of layers.
    """
    if len(pres) != len(net.layers) or len(errs) != len(net.layers):
        raise ValueError(
            f"local_updates: need one (pre, err) per layer ({len(net.layers)}), got "
            f"{len(pres)} pres and {len(errs)} errs"
        )
    layers = []
    for layer, pre, err in zip(net.layers, pres, errs):
        dw, db = layer.batch_update(pre, err)
        layers.append(Layer(dw, db, layer.activation))
    return eqx.tree_at(lambda n: n.layers, net, tuple(layers))


def mse_loss(net: MLP, x: Float[Array, "batch n0"], y: Float[Array, "batch nL"]):
    """Gives L = 1/2 mean over the batch of ||net(x) - y||^2 (the loss PC's energy implies)."""
    return 0.5 * jnp.mean(jnp.sum((net(x) - y) ** 2, axis=-1))
