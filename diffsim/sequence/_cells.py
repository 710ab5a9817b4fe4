"""Recurrent cells as equinox modules, run over a sequence by `diffsim.rollout`."""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from .._rollout import BPTT, AbstractGradient, rollout


def _uniform(key, shape, fan):
    bound = 1.0 / math.sqrt(fan)
    return jax.random.uniform(key, shape, minval=-bound, maxval=bound)


class AbstractCell(eqx.Module):
    """One step of a recurrent network: `state, h = cell(state, x)`.

    A cell is a diffsim step: `Recurrent` runs it with `diffsim.rollout`, so every gradient
    strategy of the core (BPTT, Checkpointed, Truncated(k), DiscreteAdjoint) applies.
    """

    input_size: eqx.AbstractVar[int]
    hidden_size: eqx.AbstractVar[int]

    @abc.abstractmethod
    def init_state(self) -> PyTree:
        """The state before the first position (zeros)."""

    @abc.abstractmethod
    def __call__(self, state: PyTree, x: Float[Array, " d"]) -> tuple[PyTree, Float[Array, " h"]]:
        """Gives `(next_state, hidden_output)` after reading one position `x`."""


class RNNCell(AbstractCell):
    """The vanilla (Elman) cell: h' = tanh(W x + U h + b).

    **Arguments:** `input_size`, `hidden_size`, `key` (keyword); weights uniform in
    +-1/sqrt(hidden_size) (PyTorch's default).

    **Example:** `state, h = RNNCell(4, 16, key=key)(jnp.zeros(16), x)`.
    """

    weight_ih: Float[Array, "h d"]
    weight_hh: Float[Array, "h h"]
    bias: Float[Array, " h"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(self, input_size: int, hidden_size: int, *, key: PRNGKeyArray):
        _check_sizes("RNNCell", input_size, hidden_size)
        k1, k2, k3 = jax.random.split(key, 3)
        self.weight_ih = _uniform(k1, (hidden_size, input_size), hidden_size)
        self.weight_hh = _uniform(k2, (hidden_size, hidden_size), hidden_size)
        self.bias = _uniform(k3, (hidden_size,), hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size

    def init_state(self):
        return jnp.zeros(self.hidden_size, self.bias.dtype)

    def __call__(self, state, x):
        h = jnp.tanh(self.weight_ih @ x + self.weight_hh @ state + self.bias)
        return h, h


class GRUCell(AbstractCell):
    """The gated recurrent unit, with the equations of `equinox.nn.GRUCell`:

    r = s(W_r x + U_r h + b_r), z = s(W_z x + U_z h + b_z),
    n = tanh(W_n x + b_n + r (U_n h + c_n)), h' = (1 - z) n + z h.

    **Arguments:** `input_size`, `hidden_size`, `update_bias` (added to b_z at
    initialisation: > 0 makes the cell keep its state by default, which helps long-range
    credit), `timescale` (instead: the chrono initialisation of Tallec & Ollivier, 2018,
    b_z = log U(1, timescale - 1), so units remember over 1 .. timescale positions),
    `key` (keyword).
    """

    weight_ih: Float[Array, "h3 d"]
    weight_hh: Float[Array, "h3 h"]
    bias: Float[Array, " h3"]
    bias_n: Float[Array, " h"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        update_bias: float = 1.0,
        timescale: float | None = None,
        key: PRNGKeyArray,
    ):
        _check_sizes("GRUCell", input_size, hidden_size)
        k1, k2, k3, k4 = jax.random.split(key, 4)
        h = hidden_size
        self.weight_ih = _uniform(k1, (3 * h, input_size), h)
        self.weight_hh = _uniform(k2, (3 * h, h), h)
        bias = _uniform(k3, (3 * h,), h)
        gate = _chrono(k4, h, timescale) if timescale is not None else update_bias
        self.bias = bias.at[h : 2 * h].add(gate)
        self.bias_n = _uniform(k4, (h,), h)
        self.input_size, self.hidden_size = input_size, hidden_size

    def init_state(self):
        return jnp.zeros(self.hidden_size, self.bias.dtype)

    def __call__(self, state, x):
        xi_r, xi_z, xi_n = jnp.split(self.weight_ih @ x + self.bias, 3)
        hh_r, hh_z, hh_n = jnp.split(self.weight_hh @ state, 3)
        r = jax.nn.sigmoid(xi_r + hh_r)
        z = jax.nn.sigmoid(xi_z + hh_z)
        n = jnp.tanh(xi_n + r * (hh_n + self.bias_n))
        h = (1 - z) * n + z * state
        return h, h


class LSTMCell(AbstractCell):
    """The long short-term memory cell, with the equations of `equinox.nn.LSTMCell`;
    the state is `(h, c)` and the output `h`.

    **Arguments:** `input_size`, `hidden_size`, `forget_bias` (added to the forget gate's
    bias at initialisation; 1 is the usual choice), `timescale` (instead: the chrono
    initialisation, forget bias log U(1, timescale - 1) and input bias its negative),
    `key` (keyword).
    """

    weight_ih: Float[Array, "h4 d"]
    weight_hh: Float[Array, "h4 h"]
    bias: Float[Array, " h4"]
    input_size: int = eqx.field(static=True)
    hidden_size: int = eqx.field(static=True)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        forget_bias: float = 1.0,
        timescale: float | None = None,
        key: PRNGKeyArray,
    ):
        _check_sizes("LSTMCell", input_size, hidden_size)
        k1, k2, k3, k4 = jax.random.split(key, 4)
        h = hidden_size
        self.weight_ih = _uniform(k1, (4 * h, input_size), h)
        self.weight_hh = _uniform(k2, (4 * h, h), h)
        bias = _uniform(k3, (4 * h,), h)
        if timescale is not None:
            f = _chrono(k4, h, timescale)
            bias = bias.at[h : 2 * h].add(f).at[:h].add(-f)
        else:
            bias = bias.at[h : 2 * h].add(forget_bias)
        self.bias = bias
        self.input_size, self.hidden_size = input_size, hidden_size

    def init_state(self):
        z = jnp.zeros(self.hidden_size, self.bias.dtype)
        return (z, z)

    def __call__(self, state, x):
        h, c = state
        i, f, g, o = jnp.split(self.weight_ih @ x + self.weight_hh @ h + self.bias, 4)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h


def _chrono(key, h, timescale):
    if not timescale > 2:
        raise ValueError(f"timescale must be > 2, got {timescale!r}")
    return jnp.log(jax.random.uniform(key, (h,), minval=1.0, maxval=timescale - 1.0))


CELLS = {"rnn": RNNCell, "gru": GRUCell, "lstm": LSTMCell}


def make_cell(
    kind: str,
    input_size: int,
    hidden_size: int,
    *,
    timescale: float | None = None,
    key: PRNGKeyArray,
) -> AbstractCell:
    """Gives a cell by name: `"rnn"`, `"gru"` or `"lstm"` (for configs); `timescale`
    chooses the chrono initialisation of the gated cells (the vanilla cell has no gate).

    **Raises:** `ValueError` for another name.
    """
    if kind not in CELLS:
        raise ValueError(f"make_cell: kind must be one of {sorted(CELLS)}, got {kind!r}")
    if kind == "rnn":
        return RNNCell(input_size, hidden_size, key=key)
    return CELLS[kind](input_size, hidden_size, timescale=timescale, key=key)


def _check_sizes(name, input_size, hidden_size):
    for arg, v in [("input_size", input_size), ("hidden_size", hidden_size)]:
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: {arg} must be an int >= 1, got {v!r}")


class Recurrent(eqx.Module):
    """A cell run along a sequence by `diffsim.rollout`: gives its output at every position.

    Masked positions (padding of a ragged batch) leave the state unchanged and repeat the
    last output, so a padded sequence gives exactly the outputs of the unpadded one at its
    real positions, and its final state is the state after its last real position.

    **Arguments:**

    - `cell`: an `AbstractCell`.
    - `grad`: the rollout's gradient strategy: `BPTT()` (default), `Truncated(k)`
      (truncated BPTT with window k), `Checkpointed()` (O(sqrt T) memory), ...
    - `reverse`: read the sequence from its end (the backward half of a bidirectional
      layer); outputs are still aligned with the input positions.

    **Call:** `layer(xs, mask=None)` with `xs` of shape `(t, input_size)` and `mask`
    `(t,)` bool; returns `(t, hidden_size)`.

    **Example:**

    ```python
    layer = Recurrent(GRUCell(4, 32, key=key), grad=diffsim.Truncated(50))
    hs = layer(one_hot("ACGT..."))
    ```
    """

    cell: AbstractCell
    grad: AbstractGradient = BPTT()
    reverse: bool = eqx.field(static=True, default=False)

    @property
    def out_size(self) -> int:
        return self.cell.hidden_size

    def final_state(self, xs: Float[Array, "t d"], mask: Bool[Array, " t"] | None = None) -> PyTree:
        """The state after the last real position (the first, when `reverse`)."""
        return self._run(xs, mask)[0]

    def __call__(
        self, xs: Float[Array, "t d"], mask: Bool[Array, " t"] | None = None
    ) -> Float[Array, "t h"]:
        return self._run(xs, mask)[1]

    def _run(self, xs, mask):
        if xs.ndim != 2 or xs.shape[1] != self.cell.input_size:
            raise ValueError(
                f"Recurrent: xs must have shape (t, {self.cell.input_size}), got {xs.shape}"
            )
        cell = self.cell

        def step(state, x):
            new, _ = cell(state, x)
            return new, _output(new)

        def masked_step(state, inp):
            x, m = inp
            new, _ = cell(state, x)
            new = jax.tree.map(lambda a, b: jnp.where(m, a, b), new, state)
            return new, _output(new)

        if self.reverse:
            xs = xs[::-1]
            mask = None if mask is None else mask[::-1]
        # Without a mask every position is real: no per-step select (it doubles the
        # elementwise work of a small cell and its residuals).
        if mask is None:
            final, hs = rollout(step, cell.init_state(), xs, grad=self.grad)
        else:
            final, hs = rollout(masked_step, cell.init_state(), (xs, mask), grad=self.grad)
        return final, (hs[::-1] if self.reverse else hs)


def _output(state):
    return state[0] if isinstance(state, tuple) else state


class Bidirectional(eqx.Module):
    """Two recurrent layers, one reading forwards and one backwards; outputs concatenated.

    **Arguments:** `forward`, `backward`: `Recurrent` layers (`backward.reverse` must be
    True). `Bidirectional.of(kind, input_size, hidden, key=...)` builds both.

    **Call:** `layer(xs, mask=None)` -> `(t, 2 hidden)`.
    """

    forward: Recurrent
    backward: Recurrent

    def __check_init__(self):
        if self.forward.reverse or not self.backward.reverse:
            raise ValueError("Bidirectional: forward must read forwards and backward backwards")

    @classmethod
    def of(
        cls,
        kind: str,
        input_size: int,
        hidden_size: int,
        *,
        grad: AbstractGradient = BPTT(),
        timescale: float | None = None,
        key: PRNGKeyArray,
    ) -> Bidirectional:
        k1, k2 = jax.random.split(key)
        cells = [
            make_cell(kind, input_size, hidden_size, timescale=timescale, key=k) for k in (k1, k2)
        ]
        return cls(Recurrent(cells[0], grad), Recurrent(cells[1], grad, reverse=True))

    @property
    def out_size(self) -> int:
        return self.forward.out_size + self.backward.out_size

    def __call__(
        self, xs: Float[Array, "t d"], mask: Bool[Array, " t"] | None = None
    ) -> Float[Array, "t h2"]:
        return jnp.concatenate([self.forward(xs, mask), self.backward(xs, mask)], axis=-1)


class Conv(eqx.Module):
    """A 1D convolution along the sequence ('same' padding) with a ReLU, as a layer.

    **Arguments:** `input_size`, `out_size`, `width` (odd), `key`.
    **Call:** `layer(xs, mask=None)` -> `(t, out_size)`; masked positions read as zeros.
    """

    conv: eqx.nn.Conv1d
    out_size: int = eqx.field(static=True)

    def __init__(self, input_size: int, out_size: int, width: int, *, key: PRNGKeyArray):
        if not isinstance(width, int) or width < 1 or width % 2 == 0:
            raise ValueError(f"Conv: width must be an odd int >= 1, got {width!r}")
        self.conv = eqx.nn.Conv1d(input_size, out_size, width, padding=width // 2, key=key)
        self.out_size = out_size

    def __call__(
        self, xs: Float[Array, "t d"], mask: Bool[Array, " t"] | None = None
    ) -> Float[Array, "t o"]:
        if mask is not None:
            xs = jnp.where(mask[:, None], xs, 0.0)
        return jax.nn.relu(self.conv(xs.T).T)
