"""The pieces the energy models are built from: the pair graph and its radial features.

`build_edges` turns candidate pairs (from `diffsim.molecular.pair_indices`) into `Edges`:
each unordered pair once, with its distance, unit vector, a sine (Bessel) radial basis
and a polynomial envelope that goes to zero at the cutoff with its first two
derivatives (DimeNet, p = 6), so energies and forces are continuous as atoms cross it.

The dense layers are equinox's own `eqx.nn.Linear` and `eqx.nn.Embedding`; `MLP` is two
`eqx.nn.Linear` around an activation (see its docstring for why not `eqx.nn.MLP`).
`linear` and `MLP` are made with the LeCun-normal initialisation of the SchNet and
PaiNN reference codes; `per_row` applies them over leading axes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Int, PRNGKeyArray
from ..molecular import AbstractSpace


def shifted_softplus(x: Array) -> Array:
    """Gives log(0.5 e^x + 0.5): SchNet's activation, zero at zero."""
    return jax.nn.softplus(x) - math.log(2.0)


def bessel_basis(r: Float[Array, "*m"], n: int, cutoff: float) -> Float[Array, "*m k"]:
    """Gives sqrt(2 / rc) sin(k pi r / rc) / r for k = 1..n, shape `r.shape + (n,)`.

    **Arguments:** `r` distances (Angstrom, > 0); `n` the number of functions; `cutoff`
    rc (Angstrom).
    """
    k = jnp.arange(1, n + 1, dtype=r.dtype).reshape((1,) * r.ndim + (n,))
    return math.sqrt(2.0 / cutoff) * jnp.sin(k * (math.pi / cutoff) * r[..., None]) / r[..., None]


def polynomial_envelope(r: Float[Array, "*m"], cutoff: float, p: int = 6) -> Float[Array, "*m"]:
    """Gives DimeNet's envelope: 1 at r = 0, and 0 with two zero derivatives at r = rc.

    u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2), x = r / rc, and 0
    for x >= 1.
    """
    x = r / cutoff
    u = (
        1.0
        - (p + 1) * (p + 2) / 2 * x**p
        + p * (p + 2) * x ** (p + 1)
        - p * (p + 1) / 2 * x ** (p + 2)
    )
    return jnp.where(x < 1.0, u, jnp.zeros_like(u))


class Edges(eqx.Module):
    """Unordered pairs within the cutoff, each once: the graph a model passes messages on.

    `i`, `j` index the atoms (clamped into range); `r` the distances; `unit` is
    (r_i - r_j) / r_ij, shape `(m, 3)`; `basis` the radial basis times the envelope,
    shape `(m, n_rbf)`, and `envelope` shape `(m,)`: both zero for padding pairs and
    pairs beyond the cutoff, which is all the masking the models need.
    """

    i: Int[Array, " m"]
    j: Int[Array, " m"]
    r: Float[Array, " m"]
    unit: Float[Array, "m 3"]
    basis: Float[Array, "m k"]
    envelope: Float[Array, " m"]


def build_edges(
    positions: Float[Array, "n 3"],
    pairs: Int[Array, "m 2"],
    space: AbstractSpace,
    cutoff: float,
    n_rbf: int,
) -> Edges:
    """Gives the `Edges` of `pairs`.

    **Arguments:**

    - `positions`: shape `(n, 3)`, Angstrom.
    - `pairs`: shape `(m, 2)`; rows indexing `n` are padding (as in a `NeighborList`).
    - `space`: minimum image for periodic spaces.
    - `cutoff`: Angstrom; `n_rbf`: the size of the radial basis.

    **Example:** `build_edges(r, md.pair_indices(len(r), cutoff=5.0), md.FreeSpace(), 5.0, 16)`.
    """
    n = positions.shape[0]
    i, j = pairs[:, 0], pairs[:, 1]
    comps = space.pair_components(positions, i, j)
    r2 = sum(c * c for c in comps)
    inside = (i < n) & (r2 < cutoff * cutoff)
    # Pairs outside read a dummy distance, so that their (masked) gradient is 0, not NaN.
    r = jnp.sqrt(jnp.where(inside, r2, jnp.full_like(r2, (0.5 * cutoff) ** 2)))
    env = jnp.where(inside, polynomial_envelope(r, cutoff), jnp.zeros_like(r))
    unit = jnp.stack(comps, axis=-1) / r[:, None]
    basis = bessel_basis(r, n_rbf, cutoff) * env[:, None]
    return Edges(jnp.minimum(i, n - 1), jnp.minimum(j, n - 1), r, unit, basis, env)


def _lecun_normal(key: PRNGKeyArray, n_in: int, n_out: int) -> Array:
    # Drawn as (in, out) and transposed into equinox's (out, in) layout, so a key gives
    # the same weights as the earlier hand-written layers did.
    return (jax.random.normal(key, (n_in, n_out)) / math.sqrt(n_in)).T


def linear(n_in: int, n_out: int, *, key: PRNGKeyArray, bias: bool = True) -> eqx.nn.Linear:
    """Gives an `eqx.nn.Linear` with LeCun-normal weights and zero bias."""
    layer = eqx.nn.Linear(n_in, n_out, use_bias=bias, key=key)
    layer = eqx.tree_at(lambda m: m.weight, layer, _lecun_normal(key, n_in, n_out))
    if bias:
        layer = eqx.tree_at(lambda m: m.bias, layer, jnp.zeros((n_out,)))
    return layer


class MLP(eqx.Module):
    """Linear -> activation -> Linear on one feature vector, from two `eqx.nn.Linear` with
    LeCun-normal weights and zero biases.

    `eqx.nn.MLP(depth=1)` computes the same, but keeps its activation as a pytree leaf
    (a function, vmapped per neuron to allow learnt activations): a model holding one is
    then not a tree of arrays, so `jax.jit` cannot take it as an argument. Here the
    activation is a static field and every leaf is an array.

    **Arguments:** `n_in`, `n_hidden`, `n_out` sizes; `key`; `activation` (default SiLU).

    **Example:** `per_row(MLP(16, 32, 1, key=key), features)` gives shape `(n, 1)`.
    """

    hidden: eqx.nn.Linear
    output: eqx.nn.Linear
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        key: PRNGKeyArray,
        activation: Callable[[Array], Array] = jax.nn.silu,
    ):
        k1, k2 = jax.random.split(key)
        self.hidden = linear(n_in, n_hidden, key=k1)
        self.output = linear(n_hidden, n_out, key=k2)
        self.activation = activation

    def __call__(self, x: Float[Array, " i"]) -> Float[Array, " o"]:
        return self.output(self.activation(self.hidden(x)))


def per_row(layer: Callable[[Array], Array], x: Array) -> Array:
    """Applies `layer` (which takes one feature vector, as equinox's layers do) over every
    leading axis of `x`."""
    for _ in range(x.ndim - 1):
        layer = jax.vmap(layer)
    return layer(x)
