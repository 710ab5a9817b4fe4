"""A NequIP-style energy model written here with e3nn-jax: `bench_potential.py`'s reference.

It is not NequIP (the `nequip` package, PyTorch): it is our own equinox model after
NequIP's interaction, built from e3nn-jax's irreps, tensor products and gate, and it
shares diffsim's edge and radial-basis code. Its own tests (E(3) equivariance, forces
against finite differences) are in `tests/potentials/test_nequip_style_e3nn.py`.

Interaction layers after NequIP (Batzner et al. 2022) as written in Mario Geiger's
nequip-jax (`_impl`), in equinox with `e3nn.equinox.Linear`:

    m_ij = R(r_ij) * [ W_up h_j ; W_up h_j (x) Y(r_ij_hat) ]   (per output irrep, 1..lmax)
    h_i <- gate( W_down sum_j m_ij / sqrt(avg_neighbors) + W_skip[s_i] h_i )

with `Y` the real spherical harmonics l = 1..lmax, `(x)` the full tensor product
filtered to the hidden irreps (no weights of its own: each output irrep of each path
is scaled by one output of the radial MLP `R`, NequIP's "uvu" weighting), a species-
indexed self-interaction, and the gate nonlinearity. The energy is a scalar MLP read
out from the `0e` channels of the last layer. The last layer keeps only `0e` outputs
(the rest would be discarded by the readout), which is the cheapest correct choice.

It is an `AbstractEnergyModel`, so it shares diffsim's pair handling (dense or a
`NeighborList`, periodic minimum image), radial basis (Bessel times the p = 6
polynomial envelope, cutoff 5 Angstrom), reference energies, `bind`, `astype` and
`train_potential`: the comparison is between the message-passing architectures, with
everything around them identical. Each unordered pair's radial MLP runs once and
serves both message directions (as in our models), which makes the reference faster,
never slower, than a per-directed-edge implementation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import e3nn_jax as e3nn
import equinox as eqx
import jax
import jax.numpy as jnp

from diffsim.potentials import MLP, AbstractEnergyModel, Edges, per_row


def _radial_mlp(n_in: int, hidden: Sequence[int], n_out: int, *, key) -> list[tuple]:
    sizes = [n_in, *hidden, n_out]
    keys = jax.random.split(key, len(sizes) - 1)
    # No biases: R(basis = 0) = 0, so pairs beyond the cutoff contribute nothing.
    return [
        jax.random.normal(k, (a, b)) / math.sqrt(a) for k, a, b in zip(keys, sizes[:-1], sizes[1:])
    ]


def _apply_radial(weights, x):
    for k, w in enumerate(weights):
        x = x @ w.astype(x.dtype)
        if k < len(weights) - 1:
            x = jax.nn.silu(x)
    return x


def _message_irreps(irreps_in: e3nn.Irreps, sh_irreps: e3nn.Irreps, target: e3nn.Irreps):
    """The irreps of one edge's message (computed once, on zeros)."""
    x = e3nn.zeros(irreps_in, (1,))
    y = e3nn.zeros(sh_irreps, (1,))
    keep = target + "0e"
    return (
        e3nn.concatenate([x.filter(keep), e3nn.tensor_product(x, y, filter_ir_out=keep)])
        .regroup()
        .irreps
    )


class NequIPLayer(eqx.Module):
    """One NequIP interaction (see the module docstring)."""

    irreps_in: e3nn.Irreps = eqx.field(static=True)
    irreps_out: e3nn.Irreps = eqx.field(static=True)
    sh_irreps: e3nn.Irreps = eqx.field(static=True)
    avg_num_neighbors: float = eqx.field(static=True)
    linear_up: e3nn.equinox.Linear
    radial: list
    skip: e3nn.equinox.Linear
    linear_down: e3nn.equinox.Linear

    def __init__(
        self,
        irreps_in,
        irreps_out,
        *,
        lmax: int,
        n_rbf: int,
        radial_hidden: Sequence[int],
        n_species: int,
        avg_num_neighbors: float,
        key,
    ):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self.irreps_in = e3nn.Irreps(irreps_in).regroup()
        target = e3nn.Irreps(irreps_out).regroup()
        self.sh_irreps = e3nn.Irreps.spherical_harmonics(lmax)[1:]  # l = 1..lmax
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.linear_up = e3nn.equinox.Linear(
            irreps_in=self.irreps_in, irreps_out=self.irreps_in, key=k1
        )
        msg = _message_irreps(self.irreps_in, self.sh_irreps, target)
        self.radial = _radial_mlp(n_rbf, radial_hidden, msg.num_irreps, key=k2)
        # Outputs, plus one gate scalar for each non-scalar irrep.
        out = target.filter(keep=msg)
        n_gates = out.filter(drop="0e + 0o").num_irreps
        gated = (out + e3nn.Irreps(f"{n_gates}x0e")).simplify() if n_gates else out
        self.irreps_out = out
        self.skip = e3nn.equinox.Linear(
            irreps_in=self.irreps_in,
            irreps_out=gated,
            linear_type="indexed",
            num_indexed_weights=n_species,
            force_irreps_out=True,
            key=k3,
        )
        self.linear_down = e3nn.equinox.Linear(
            irreps_in=msg, irreps_out=gated, force_irreps_out=True, key=k4
        )

    def __call__(self, h: e3nn.IrrepsArray, species, edges: Edges) -> e3nn.IrrepsArray:
        n = h.shape[0]
        # Directed edges: receiver i <- sender j, and j <- i, from each unordered pair.
        senders = jnp.concatenate([edges.j, edges.i])
        receivers = jnp.concatenate([edges.i, edges.j])
        unit = jnp.concatenate([edges.unit, -edges.unit])
        sh = e3nn.spherical_harmonics(
            self.sh_irreps, e3nn.IrrepsArray("1o", unit), normalize=False, normalization="component"
        )
        x = self.linear_up(h)[senders]
        keep = self.irreps_out + "0e"
        msg = e3nn.concatenate(
            [x.filter(keep), e3nn.tensor_product(x, sh, filter_ir_out=keep)]
        ).regroup()
        # The basis carries the envelope: zero for padding rows and pairs beyond the cutoff.
        mix = _apply_radial(self.radial, edges.basis)
        msg = msg * jnp.concatenate([mix, mix])
        agg = e3nn.scatter_sum(msg, dst=receivers, output_size=n) / math.sqrt(
            self.avg_num_neighbors
        )
        out = self.linear_down(agg) + self.skip(species, h)
        return e3nn.gate(out, even_act=jax.nn.silu, odd_act=jax.nn.tanh, even_gate_act=jax.nn.silu)


class NequIPStyleE3nn(AbstractEnergyModel):
    """NequIP-style model in e3nn-jax (ours): `layers` interactions with `hidden` irreps.

    **Arguments:** `elements` (atomic numbers), `cutoff` (Angstrom), `hidden` (irreps
    of the node features, e.g. `"32x0e + 32x1o + 32x2e"`), `layers`, `lmax` (highest
    spherical harmonic of the edge direction), `n_rbf`, `radial_hidden` (widths of the
    radial MLP's hidden layers), `avg_num_neighbors` (message normalisation), `key`,
    `precision` (of the matrix products, as in diffsim's models).
    """

    elements: tuple[int, ...] = eqx.field(static=True)
    cutoff: float = eqx.field(static=True)
    n_rbf: int = eqx.field(static=True)
    hidden: str = eqx.field(static=True)
    precision: str = eqx.field(static=True)
    embedding: jax.Array
    interactions: tuple[NequIPLayer, ...]
    readout: MLP
    e_ref: jax.Array
    scale: jax.Array

    def __init__(
        self,
        elements: Sequence[int],
        *,
        cutoff: float = 5.0,
        hidden: str = "32x0e + 32x1o + 32x2e",
        layers: int = 3,
        lmax: int = 2,
        n_rbf: int = 8,
        radial_hidden: Sequence[int] = (64,),
        avg_num_neighbors: float = 8.0,
        key,
        precision: str = "highest",
    ):
        # The same matrix-product precision as diffsim's models, so that timings compare.
        self.precision = precision
        self.elements = tuple(sorted(int(z) for z in elements))
        self.cutoff, self.n_rbf, self.hidden = float(cutoff), int(n_rbf), str(hidden)
        hidden_irreps = e3nn.Irreps(hidden).regroup()
        n_scalars = hidden_irreps.filter(keep="0e").dim
        keys = jax.random.split(key, layers + 2)
        self.embedding = jax.random.normal(keys[0], (len(self.elements), n_scalars))
        irreps = e3nn.Irreps(f"{n_scalars}x0e")
        blocks = []
        for k in range(layers):
            # The readout sees only scalars: the last layer computes nothing else.
            target = hidden_irreps if k < layers - 1 else e3nn.Irreps(f"{n_scalars}x0e")
            blocks.append(
                NequIPLayer(
                    irreps,
                    target,
                    lmax=lmax,
                    n_rbf=n_rbf,
                    radial_hidden=tuple(radial_hidden),
                    n_species=len(self.elements),
                    avg_num_neighbors=avg_num_neighbors,
                    key=keys[1 + k],
                )
            )
            irreps = blocks[-1].irreps_out
        self.interactions = tuple(blocks)
        self.readout = MLP(n_scalars, n_scalars // 2 or 1, 1, key=keys[-1])
        self.e_ref = jnp.zeros((len(self.elements),))
        self.scale = jnp.ones(())

    def hyperparameters(self) -> dict:
        return {"elements": list(self.elements), "cutoff": self.cutoff, "hidden": self.hidden}

    def atomic_energies(self, species, edges):
        dtype = edges.r.dtype
        h = e3nn.IrrepsArray(f"{self.embedding.shape[1]}x0e", self.embedding.astype(dtype)[species])
        for layer in self.interactions:
            h = layer(h, species, edges)
        return per_row(self.readout, h.filter(keep="0e").array)[:, 0]


def count_parameters(model) -> int:
    """Number of trainable scalars (floating-point array entries) in a model."""
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    # e_ref and scale are set from data, not trained.
    return sum(x.size for x in leaves) - model.e_ref.size - model.scale.size
