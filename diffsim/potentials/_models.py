"""Learned interatomic potentials: energy models whose gradient is the force field.

A model maps positions and species to a total energy,

    E = sum_i [ scale * epsilon_i(environment of i) + e_ref[s_i] ],

with atomic energies `epsilon_i` from message passing over the pairs closer than the
cutoff. Forces are `-jax.grad(E)` with respect to positions: one backward pass gives
all of them, and they are exactly conservative, so the model drives molecular
dynamics through the same integrators as the classical potentials (`bind`).

Two models, both equinox modules:

- `SchNet`: invariant; continuous filters of the interatomic distance only
  (Schuett et al. 2018).
- `PaiNN`: E(3)-equivariant; each atom carries scalar (l = 0) and vector (l = 1)
  features, messages use the unit vector of each pair, and the energy is read out
  from scalars only (Schuett, Unke, Gastegger 2021). Rotations, reflections,
  translations and permutations leave the energy unchanged and rotate the forces.

Both use a sine (Bessel) radial basis times a polynomial envelope (DimeNet, p = 6)
that goes to zero at the cutoff with its first two derivatives, so energy and forces
are continuous as atoms cross the cutoff. `e_ref` (per-species reference energies) and
`scale` are set from the training data (`fit_energy_scale`), not trained.

Pairs come from the MD engine (`diffsim.molecular.pair_indices`): `neighbors=None`
takes every pair (the dense path, for molecules and small cells; minimum image in
periodic spaces), a `NeighborList` its pairs. Each unordered pair's distance, basis and
filter are computed once and used for both message directions.

The layers are `eqx.nn.Embedding`, `eqx.nn.Linear` and `MLP` (two `eqx.nn.Linear`),
initialised LeCun-normal as in the reference codes.

Matrix products run at `precision="highest"` by default: on GPUs JAX's default float32
product uses TF32 (10-bit mantissa), which breaks the rotation symmetry of the energy by
about 1e-4 relative and so puts a physics error into MD forces. `precision="default"`
leaves the choice to JAX (`jax.default_matmul_precision`), for users who accept TF32 for
speed; on CPUs the two give the same program speed.
"""

from __future__ import annotations

import abc
import contextlib
import copy
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float, Int, PRNGKeyArray, Scalar
from ..molecular import (
    AbstractEnergy,
    AbstractSpace,
    FreeSpace,
    NeighborList,
    check_box,
    pair_indices,
)
from ._layers import MLP, Edges, build_edges, linear, per_row, shifted_softplus


def _scatter(values, index, n):
    return jax.ops.segment_sum(values, index, num_segments=n)


# The model's `precision` values: "highest" (full float32/float64 products, the default),
# "high" (3-pass bf16 on TPUs; XLA may treat it as "default" elsewhere) and "default"
# (JAX's own setting, which allows TF32 on NVIDIA GPUs since Ampere).
PRECISIONS = ("highest", "high", "default")


def _check_precision(precision) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return precision


def matmul_precision(precision: str):
    """Gives the context in which a model's matrix products run at `precision`.

    `"default"` enters nothing, so JAX's setting (`jax.default_matmul_precision`, or the
    `JAX_DEFAULT_MATMUL_PRECISION` environment variable) applies. The precision is set when
    the products are traced, and their transposes (the backward pass, so the forces)
    inherit it.
    """
    if _check_precision(precision) == "default":
        return contextlib.nullcontext()
    return jax.default_matmul_precision(precision)


# --- models ----------------------------------------------------------------------------


class AbstractEnergyModel(eqx.Module):
    """An energy model: `model(positions, species, neighbors=None, *, space=None)`.

    Subclasses give `atomic_energies(species, edges)` (before scaling),
    `hyperparameters()` and the fields below; the total, the reference energies and
    the pair handling are shared here.
    """

    elements: eqx.AbstractVar[tuple[int, ...]]
    cutoff: eqx.AbstractVar[float]
    n_rbf: eqx.AbstractVar[int]
    e_ref: eqx.AbstractVar[Float[Array, " S"]]
    scale: eqx.AbstractVar[Scalar]
    precision: eqx.AbstractVar[str]

    @abc.abstractmethod
    def atomic_energies(self, species: Int[Array, " n"], edges: Edges) -> Float[Array, " n"]:
        """Gives each atom's unscaled energy contribution, shape `(n,)`."""

    @abc.abstractmethod
    def hyperparameters(self) -> dict:
        """Gives the JSON-able keyword arguments (with `elements`) that rebuild this
        model's structure through `make_model`."""

    def __call__(
        self,
        positions: Float[ArrayLike, "n 3"],
        species: Int[ArrayLike, " n"],
        neighbors: NeighborList | None = None,
        *,
        space: AbstractSpace | None = None,
    ) -> Scalar:
        """Gives the total energy (eV when trained on eV).

        **Arguments:**

        - `positions`: shape `(n, 3)`, Angstrom.
        - `species`: shape `(n,)`, indices into `self.elements` (`species_of` maps
          atomic numbers).
        - `neighbors`: a `NeighborList` with cutoff >= `self.cutoff`, or `None` for all
          pairs.
        - `space`: `FreeSpace()` (default) or a periodic box (minimum image).
        """
        positions = jnp.asarray(positions)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions must have shape (n, 3), got {positions.shape}")
        if not jnp.issubdtype(positions.dtype, jnp.floating):
            raise ValueError(f"positions must be floating point, got dtype {positions.dtype}")
        n = positions.shape[0]
        if np.shape(species) != (n,):
            raise ValueError(
                f"species must have shape ({n},) like positions, got {np.shape(species)}"
            )
        space = FreeSpace() if space is None else space
        pairs = pair_indices(n, neighbors, cutoff=self.cutoff)
        with matmul_precision(self.precision):
            edges = build_edges(positions, pairs, space, self.cutoff, self.n_rbf)
            eps = self.atomic_energies(jnp.asarray(species), edges)
        e_ref = jax.lax.stop_gradient(self.e_ref).astype(positions.dtype)
        scale = jax.lax.stop_gradient(self.scale).astype(positions.dtype)
        return jnp.sum(scale * eps + e_ref[species])

    def species_of(self, numbers: Sequence[int] | ArrayLike) -> Int[Array, " n"]:
        """Gives species indices for atomic numbers.

        **Raises:** `ValueError` naming an element the model was not trained on.
        """
        numbers = np.asarray(numbers)
        unknown = sorted(set(numbers.tolist()) - set(self.elements))
        if unknown:
            raise ValueError(
                f"unknown species: atomic numbers {unknown}; this model knows {list(self.elements)}"
            )
        return jnp.asarray(np.searchsorted(np.asarray(self.elements), numbers).astype(np.int32))

    def bind(self, species, space: AbstractSpace | None = None) -> LearnedEnergy:
        """Gives an `AbstractEnergy` for fixed species and space (for the integrators)."""
        return LearnedEnergy(self, jnp.asarray(species), FreeSpace() if space is None else space)

    def with_precision(self, precision: str) -> AbstractEnergyModel:
        """Gives the model with its matrix products at `precision` (`"highest"`, `"high"`
        or `"default"`; see the module docstring). The parameters are shared.

        **Example:** `fast = model.with_precision("default")` accepts TF32 on a GPU.
        """
        _check_precision(precision)
        # A static field is not a pytree leaf (eqx.tree_at cannot set it): copy and set it,
        # as the frozen dataclass's own __init__ does.
        new = copy.copy(self)
        object.__setattr__(new, "precision", precision)
        return new

    def with_reference(self, e_ref, scale) -> AbstractEnergyModel:
        """Gives the model with new reference energies and scale (see `fit_energy_scale`)."""
        return eqx.tree_at(
            lambda m: (m.e_ref, m.scale),
            self,
            (jnp.asarray(e_ref, self.e_ref.dtype), jnp.asarray(scale, self.scale.dtype)),
        )


class LearnedEnergy(AbstractEnergy):
    """A model with its species and space fixed: `energy(positions, neighbors=None)`.

    Works wherever a classical potential does (`NVE`, `Langevin`,
    `simulate`, `stress`).
    """

    model: AbstractEnergyModel
    species: Int[Array, " n"]
    space: AbstractSpace

    def __check_init__(self):
        check_box(self.space, self.model.cutoff)

    @property
    def cutoff_radius(self) -> float:
        return self.model.cutoff

    def __call__(self, positions, neighbors=None, *, space=None, **params):
        if params:
            raise ValueError(f"LearnedEnergy takes no parameters, got {sorted(params)}")
        return self.model(
            positions, self.species, neighbors, space=self.space if space is None else space
        )


def _init_reference(n_species):
    return jnp.zeros((n_species,)), jnp.ones(())


def _hyperparameters(model) -> dict:
    return {
        "elements": list(model.elements),
        "cutoff": model.cutoff,
        "features": model.features,
        "layers": model.layers,
        "n_rbf": model.n_rbf,
        "precision": model.precision,
    }


def _check_common(elements, cutoff, features, layers, n_rbf, precision):
    _check_precision(precision)
    if len(elements) == 0 or len(set(elements)) != len(elements):
        raise ValueError(f"elements must be distinct atomic numbers, got {elements}")
    if not all(isinstance(z, int) and 0 < z < 119 for z in elements):
        raise ValueError(f"elements must be atomic numbers in 1..118, got {elements}")
    if not cutoff > 0:
        raise ValueError(f"cutoff must be > 0 (Angstrom), got {cutoff}")
    for name, v in [("features", features), ("layers", layers), ("n_rbf", n_rbf)]:
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")


class SchNet(AbstractEnergyModel):
    """Invariant baseline: continuous-filter convolutions of the distances only.

    **Arguments:** `elements` (sorted atomic numbers the model knows), `cutoff`
    (Angstrom), `features` (channels), `layers` (interaction blocks), `n_rbf` (radial
    basis size), `key`; `precision` of the matrix products, `"highest"` (default),
    `"high"` or `"default"` (JAX's setting: TF32 on recent NVIDIA GPUs).

    **Raises:** `ValueError` naming a bad argument.
    """

    elements: tuple[int, ...] = eqx.field(static=True)
    cutoff: float = eqx.field(static=True)
    n_rbf: int = eqx.field(static=True)
    features: int = eqx.field(static=True)
    layers: int = eqx.field(static=True)
    precision: str = eqx.field(static=True)
    embedding: eqx.nn.Embedding
    filters: tuple[MLP, ...]
    inputs: tuple[eqx.nn.Linear, ...]
    outputs: tuple[MLP, ...]
    readout: MLP
    e_ref: Float[Array, " S"]
    scale: Scalar

    def __init__(
        self,
        elements: Sequence[int],
        *,
        cutoff: float = 5.0,
        features: int = 64,
        layers: int = 3,
        n_rbf: int = 16,
        key: PRNGKeyArray,
        precision: str = "highest",
    ):
        elements = tuple(sorted(int(z) for z in elements))
        _check_common(elements, cutoff, features, layers, n_rbf, precision)
        self.elements, self.cutoff, self.n_rbf = elements, float(cutoff), n_rbf
        self.features, self.layers, self.precision = features, layers, precision
        keys = jax.random.split(key, 3 * layers + 2)
        ssp = shifted_softplus
        self.embedding = eqx.nn.Embedding(
            weight=jax.random.normal(keys[0], (len(elements), features))
        )
        self.filters = tuple(
            MLP(n_rbf, features, features, key=keys[1 + 3 * k], activation=ssp)
            for k in range(layers)
        )
        self.inputs = tuple(
            linear(features, features, key=keys[2 + 3 * k], bias=False) for k in range(layers)
        )
        self.outputs = tuple(
            MLP(features, features, features, key=keys[3 + 3 * k], activation=ssp)
            for k in range(layers)
        )
        self.readout = MLP(features, features // 2 or 1, 1, key=keys[-1], activation=ssp)
        self.e_ref, self.scale = _init_reference(len(elements))

    def hyperparameters(self) -> dict:
        return _hyperparameters(self)

    def atomic_energies(self, species, edges):
        n = species.shape[0]
        dtype = edges.r.dtype
        h = jax.vmap(self.embedding)(species).astype(dtype)
        for filt, inp, out in zip(self.filters, self.inputs, self.outputs):
            # The filter is zero beyond the cutoff because the envelope multiplies it.
            w = per_row(filt, edges.basis) * edges.envelope[:, None]
            x = per_row(inp, h)
            m = _scatter(x[edges.j] * w, edges.i, n) + _scatter(x[edges.i] * w, edges.j, n)
            h = h + per_row(out, m)
        return per_row(self.readout, h)[:, 0]


class PaiNN(AbstractEnergyModel):
    """E(3)-equivariant message passing with scalar and vector features (PaiNN).

    Each atom holds scalars `s` (shape `(F,)`) and vectors `v` (shape `(3, F)`, zero at
    the start). A message from j to i carries `phi(s_j) * W(r_ij)` split three ways:
    a scalar update, a gate on `v_j` and a gate on the unit vector (r_i - r_j)/r_ij.
    The update mixes channels of `v` by two linear maps U, V and exchanges
    information through the invariants |V v| and <U v, V v>. Nothing but dot products
    of vectors reaches the scalars, so the energy is invariant under O(3) (rotations
    and reflections) and the forces are equivariant.

    **Arguments:** as `SchNet`.
    """

    elements: tuple[int, ...] = eqx.field(static=True)
    cutoff: float = eqx.field(static=True)
    n_rbf: int = eqx.field(static=True)
    features: int = eqx.field(static=True)
    layers: int = eqx.field(static=True)
    precision: str = eqx.field(static=True)
    embedding: eqx.nn.Embedding
    message_mlps: tuple[MLP, ...]
    message_filters: tuple[eqx.nn.Linear, ...]
    update_u: tuple[eqx.nn.Linear, ...]
    update_v: tuple[eqx.nn.Linear, ...]
    update_mlps: tuple[MLP, ...]
    readout: MLP
    e_ref: Float[Array, " S"]
    scale: Scalar

    def __init__(
        self,
        elements: Sequence[int],
        *,
        cutoff: float = 5.0,
        features: int = 64,
        layers: int = 3,
        n_rbf: int = 16,
        key: PRNGKeyArray,
        precision: str = "highest",
    ):
        elements = tuple(sorted(int(z) for z in elements))
        _check_common(elements, cutoff, features, layers, n_rbf, precision)
        self.elements, self.cutoff, self.n_rbf = elements, float(cutoff), n_rbf
        self.features, self.layers, self.precision = features, layers, precision
        F = features
        keys = jax.random.split(key, 5 * layers + 2)
        self.embedding = eqx.nn.Embedding(weight=jax.random.normal(keys[0], (len(elements), F)))
        self.message_mlps = tuple(MLP(F, F, 3 * F, key=keys[1 + 5 * k]) for k in range(layers))
        self.message_filters = tuple(
            linear(n_rbf, 3 * F, key=keys[2 + 5 * k]) for k in range(layers)
        )
        self.update_u = tuple(linear(F, F, key=keys[3 + 5 * k], bias=False) for k in range(layers))
        self.update_v = tuple(linear(F, F, key=keys[4 + 5 * k], bias=False) for k in range(layers))
        self.update_mlps = tuple(MLP(2 * F, F, 3 * F, key=keys[5 + 5 * k]) for k in range(layers))
        self.readout = MLP(F, F // 2 or 1, 1, key=keys[-1])
        self.e_ref, self.scale = _init_reference(len(elements))

    def hyperparameters(self) -> dict:
        return _hyperparameters(self)

    def atomic_energies(self, species, edges):
        n = species.shape[0]
        F = self.features
        dtype = edges.r.dtype
        i, j = edges.i, edges.j
        s = jax.vmap(self.embedding)(species).astype(dtype)
        v = jnp.zeros((n, 3, F), dtype)
        unit = edges.unit[:, :, None]
        for k in range(self.layers):
            # Message: one filter per unordered pair, used in both directions.
            w = per_row(self.message_filters[k], edges.basis) * edges.envelope[:, None]
            phi = per_row(self.message_mlps[k], s)
            x_to_i = phi[j] * w
            x_to_j = phi[i] * w
            ds = _scatter(x_to_i[:, :F], i, n) + _scatter(x_to_j[:, :F], j, n)
            dv_i = x_to_i[:, None, 2 * F :] * unit
            dv_j = -x_to_j[:, None, 2 * F :] * unit
            if k > 0:  # the vectors start at zero: layer 0 has no v_j term to gather
                dv_i = dv_i + x_to_i[:, None, F : 2 * F] * v[j]
                dv_j = dv_j + x_to_j[:, None, F : 2 * F] * v[i]
            s = s + ds
            v = v + _scatter(dv_i, i, n) + _scatter(dv_j, j, n)
            # Update: channel mixing of the vectors, exchange through invariants.
            uv = per_row(self.update_u[k], v)
            vv = per_row(self.update_v[k], v)
            norm = jnp.sqrt(jnp.sum(vv * vv, axis=1) + 1e-8)
            a = per_row(self.update_mlps[k], jnp.concatenate([s, norm], axis=-1))
            v = v + a[:, None, :F] * uv
            s = s + a[:, F : 2 * F] * jnp.sum(uv * vv, axis=1) + a[:, 2 * F :]
        return per_row(self.readout, s)[:, 0]


MODELS: dict[str, type[AbstractEnergyModel]] = {"schnet": SchNet, "painn": PaiNN}


def make_model(name: str, elements: Sequence[int], *, key: PRNGKeyArray, **hyper):
    """Gives a model by name (`"schnet"`, `"painn"`) with hyperparameters `hyper`."""
    try:
        cls = MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; allowed: {sorted(MODELS)}") from None
    return cls(elements, key=key, **hyper)  # pyright: ignore[reportCallIssue]


def model_name(model: AbstractEnergyModel) -> str:
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise TypeError(f"not a registered model: {type(model).__name__}")


def astype(model: AbstractEnergyModel, dtype) -> AbstractEnergyModel:
    """Gives the model with every floating-point parameter cast to `dtype`."""
    return jax.tree.map(lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, model)
