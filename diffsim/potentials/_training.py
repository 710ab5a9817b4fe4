"""Force matching: train an energy model on reference energies and forces.

The loss per batch is

    w_E * mean_b ((E_b - E_b^ref) / n)^2 / sigma^2 + w_F * mean_{b,i,c} (F - F^ref)^2 / sigma^2,

per-atom energies and forces both measured in units of sigma, the RMS reference force
component (set once from the training set, as `model.scale`). Forces are
`-grad(E)` inside the loss, so training differentiates through a gradient.

`train_potential` runs `diffsim.fit` (optax, a cosine learning-rate schedule,
atomic checkpoints, resume), evaluates on the validation set every `eval_every`
steps, keeps the best model so far (in memory, and in `best.eqx` when given a
directory) through fit's `on_eval` hook, and stops early after `patience` evaluations
without improvement. On resume, fit's `on_start` hook hands back the records logged
before the interruption, from which the best-so-far is rebuilt.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._custom_types import Array, ArrayLike, Float, Int, Scalar
from .._results import result_repr
from .._train import fit
from ..molecular import FreeSpace, TriclinicBox, check_box
from ._dataset import Dataset
from ._models import AbstractEnergyModel
from ._saving import BEST_FILE, load_model, save_model

# --- predictions -------------------------------------------------------------------------


def _space(cell):
    return FreeSpace() if cell is None else TriclinicBox(cell)


def energy_and_forces(
    model: AbstractEnergyModel,
    species: Int[ArrayLike, " n"],
    positions: Float[ArrayLike, "n 3"],
    cell: Float[ArrayLike, "3 3"] | None = None,
) -> tuple[Scalar, Float[Array, "n 3"]]:
    """Gives `(E, F)` for one structure: energy (eV) and forces `-dE/dr`, shape `(n, 3)`.

    `species` are indices into `model.elements` (`model.species_of(numbers)`); positions
    in Angstrom; `cell` is a `(3, 3)` periodic cell (rows are lattice vectors) or `None`.

    **Example:** `e, f = energy_and_forces(model, model.species_of(z), positions)`.
    """
    e, g = jax.value_and_grad(model)(positions, species, None, space=_space(cell))
    return e, -g


def batch_energy_and_forces(
    model: AbstractEnergyModel,
    species: Int[ArrayLike, " n"],
    positions: Float[ArrayLike, "B n 3"],
    cells: Float[ArrayLike, "B 3 3"] | None = None,
) -> tuple[Float[Array, " B"], Float[Array, "B n 3"]]:
    """`energy_and_forces` over a batch: positions `(B, n, 3)`, cells `(B, 3, 3)` or `None`."""
    if cells is None:
        return jax.vmap(lambda r: energy_and_forces(model, species, r))(positions)
    return jax.vmap(lambda r, c: energy_and_forces(model, species, r, c))(positions, cells)


# --- data ---------------------------------------------------------------------------------


class _Arrays(NamedTuple):
    positions: jax.Array
    energies: jax.Array
    forces: jax.Array
    cells: jax.Array | None


def _arrays(dataset, dtype) -> _Arrays:
    cells = None if dataset.cells is None else jnp.asarray(dataset.cells, dtype)
    return _Arrays(
        jnp.asarray(dataset.positions, dtype),
        jnp.asarray(dataset.energies, dtype),
        jnp.asarray(dataset.forces, dtype),
        cells,
    )


def _take(a: _Arrays, idx) -> _Arrays:
    return _Arrays(
        a.positions[idx], a.energies[idx], a.forces[idx], None if a.cells is None else a.cells[idx]
    )


def check_dataset(model: AbstractEnergyModel, dataset: Dataset) -> None:
    """Raises `ValueError` if the model cannot evaluate `dataset` (species, cell size)."""
    model.species_of(dataset.numbers)
    if dataset.cells is not None:
        for c in np.unique(np.asarray(dataset.cells).reshape(len(dataset), -1), axis=0):
            check_box(TriclinicBox(jnp.asarray(c.reshape(3, 3))), model.cutoff)


def fit_energy_scale(model: AbstractEnergyModel, dataset: Dataset) -> AbstractEnergyModel:
    """Gives the model with `e_ref` and `scale` set from a training set.

    `e_ref`: per-species reference energies by least squares of the total energies on
    the composition (the minimum-norm solution when, as for one molecule, composition
    does not vary). `scale`: the RMS force component (eV/Angstrom), or the per-atom
    energy spread when forces are all zero.
    """
    species = np.asarray(model.species_of(dataset.numbers))
    counts = np.bincount(species, minlength=len(model.elements)).astype(np.float64)
    A = np.tile(counts, (len(dataset), 1))
    e = np.asarray(dataset.energies, np.float64)
    e_ref, *_ = np.linalg.lstsq(A, e, rcond=None)
    scale = float(np.sqrt(np.mean(np.asarray(dataset.forces, np.float64) ** 2)))
    if not scale > 0:
        scale = float(np.std((e - A @ e_ref) / counts.sum())) or 1.0
    return model.with_reference(e_ref, scale)


def errors(model, species, arrays: _Arrays, weights) -> dict:
    """Gives weighted per-batch sums for the metrics (so batches can be accumulated;
    weight 0 marks a padding frame)."""
    e, f = batch_energy_and_forces(model, species, arrays.positions, arrays.cells)
    n = species.shape[0]
    w = weights.astype(e.dtype)
    de = (e - arrays.energies) / n
    df = f - arrays.forces
    wf = w[:, None, None]
    return {
        "e_abs": jnp.sum(w * jnp.abs(de)),
        "e_sq": jnp.sum(w * de * de),
        "f_abs": jnp.sum(wf * jnp.abs(df)),
        "f_sq": jnp.sum(wf * df * df),
        "frames": jnp.sum(w),
        "components": jnp.sum(w) * (3 * n),
    }


_errors_jit = eqx.filter_jit(errors)


def evaluate(
    model: AbstractEnergyModel, dataset: Dataset, *, batch_size: int = 64, dtype=None
) -> dict:
    """Gives energy and force errors of `model` on `dataset`.

    **Returns:** a dict with `energy_mae` (meV/atom), `energy_rmse` (meV/atom),
    `force_mae` (meV/Angstrom), `force_rmse` (meV/Angstrom), `frames`.
    """
    check_dataset(model, dataset)
    dtype = dtype or model.scale.dtype
    species = model.species_of(dataset.numbers)
    arrays = _arrays(dataset, dtype)
    total: dict[str, float] = {}
    size = min(batch_size, len(dataset))
    for start in range(0, len(dataset), size):
        idx = np.arange(start, min(start + size, len(dataset)))
        weights = np.ones(size)
        if len(idx) < size:  # pad the last batch with weight-0 frames: one compilation
            weights[len(idx) :] = 0.0
            idx = np.concatenate([idx, np.full(size - len(idx), idx[-1])])
        part = _errors_jit(model, species, _take(arrays, jnp.asarray(idx)), jnp.asarray(weights))
        for k, v in part.items():
            total[k] = total.get(k, 0.0) + float(v)
    frames, comps = total["frames"], total["components"]
    return {
        "energy_mae": 1000 * total["e_abs"] / frames,
        "energy_rmse": 1000 * float(np.sqrt(total["e_sq"] / frames)),
        "force_mae": 1000 * total["f_abs"] / comps,
        "force_rmse": 1000 * float(np.sqrt(total["f_sq"] / comps)),
        "frames": int(frames),
    }


# --- training ------------------------------------------------------------------------------


class TrainResult(NamedTuple):
    """What `train_potential` gives back."""

    __repr__ = result_repr

    model: AbstractEnergyModel
    """The best model by validation loss (the final one without a validation set)."""
    history: list[dict]
    best_step: int
    best_val_loss: float


def force_matching_loss(model, species, arrays: _Arrays, w_energy: float, w_forces: float):
    """Gives `(loss, aux)` for a batch; see the module docstring."""
    e, f = batch_energy_and_forces(model, species, arrays.positions, arrays.cells)
    n = species.shape[0]
    sigma2 = jax.lax.stop_gradient(model.scale).astype(e.dtype) ** 2
    mse_e = jnp.mean(((e - arrays.energies) / n) ** 2)
    mse_f = jnp.mean((f - arrays.forces) ** 2)
    loss = (w_energy * mse_e + w_forces * mse_f) / sigma2
    return loss, {"energy_rmse": 1000 * jnp.sqrt(mse_e), "force_rmse": 1000 * jnp.sqrt(mse_f)}


def train_potential(
    model: AbstractEnergyModel,
    train: Dataset,
    val: Dataset | None = None,
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    final_lr_fraction: float = 0.01,
    w_energy: float = 1.0,
    w_forces: float = 1.0,
    eval_every: int = 100,
    patience: int = 0,
    key: jax.Array,
    directory: str | os.PathLike | None = None,
    resume: bool = False,
    checkpoint_every: int = 0,
    progress: bool = True,
    log_every: int = 50,
    set_scale: bool = True,
) -> TrainResult:
    """Gives a model trained by force matching on `train`, selected on `val`.

    **Arguments:**

    - `model`: an `AbstractEnergyModel` (its dtype is the training dtype).
    - `train`, `val`: `Dataset`s (`val=None`: no selection, no early stopping).
    - `steps`: optimiser steps; `batch_size` structures per step (drawn without
      replacement, step i's batch a function of `fold_in(key, i)`).
    - `lr`: peak Adam learning rate, decayed by a cosine schedule to
      `final_lr_fraction * lr` at `steps`.
    - `w_energy`, `w_forces`: loss weights (see the module docstring).
    - `eval_every`: validation period in steps; `patience`: stop after this many
      evaluations without a better validation loss (0: never stop early).
    - `directory`: where `metrics.jsonl`, `checkpoint.eqx` (resume) and `best.eqx`
      go; `resume=True` continues an interrupted run to the same result.
    - `set_scale`: set `e_ref` and `scale` from `train` first (`fit_energy_scale`).

    **Raises:** `ValueError` if a set has species the model does not know, a cell
    narrower than twice the cutoff, or fewer frames than `batch_size`.
    """
    check_dataset(model, train)
    if val is not None:
        check_dataset(model, val)
    if len(train) < batch_size:
        raise ValueError(
            f"train_potential: batch_size {batch_size} exceeds the {len(train)} training frames"
        )
    if set_scale:
        model = fit_energy_scale(model, train)
    dtype = model.scale.dtype
    species = model.species_of(train.numbers)
    data = _arrays(train, dtype)
    val_data = None if val is None else _arrays(val, dtype)
    n_train = len(train)

    def batch_fn(k, step):
        return jax.random.choice(k, n_train, (batch_size,), replace=False)

    def loss_fn(m, idx, k):
        return force_matching_loss(m, species, _take(data, idx), w_energy, w_forces)

    @eqx.filter_jit
    def val_loss(m):
        vd = val_data
        assert vd is not None  # only called with a validation set

        def body(carry, idx):
            loss, _ = force_matching_loss(m, species, _take(vd, idx), w_energy, w_forces)
            return carry, loss

        n_val = vd.energies.shape[0]
        chunk = min(batch_size * 4, n_val)
        blocks = n_val // chunk
        idx = jnp.arange(blocks * chunk).reshape(blocks, chunk)
        _, losses = jax.lax.scan(body, None, idx)
        rest = jnp.arange(blocks * chunk, n_val)
        total = jnp.sum(losses) * chunk
        if rest.size:
            total = (
                total
                + rest.size
                * force_matching_loss(m, species, _take(vd, rest), w_energy, w_forces)[0]
            )
        return total / n_val

    directory = Path(directory) if directory is not None else None
    best = _Best(patience)

    def on_eval(step, m, record):
        if best.note(record):
            best.model = m
            if directory is not None:
                save_model(directory / BEST_FILE, m, {"step": step})

    schedule = optax.cosine_decay_schedule(lr, max(steps, 1), alpha=final_lr_fraction)
    optimizer = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(schedule))
    result = fit(
        loss_fn,
        model,
        optimizer,
        steps=steps,
        key=key,
        batch_fn=batch_fn,
        eval_fn=(lambda m, k: {"loss": float(val_loss(m))}) if val is not None else None,
        eval_every=eval_every if val is not None else 0,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        directory=directory,
        resume=resume,
        progress=progress,
        stop_fn=best.exhausted if val is not None else None,
        on_start=best.replay,
        on_eval=on_eval,
    )
    if val is None:
        return TrainResult(result.params, result.history, steps, float("nan"))
    final = best.model
    if final is None:
        # Resumed after the best evaluation: it was saved before the interruption.
        final = load_model(directory / BEST_FILE) if directory is not None else result.params
    return TrainResult(final, result.history, best.step, best.loss)


class _Best:
    """The best validation loss so far, its step, and evaluations since (for patience)."""

    def __init__(self, patience: int):
        self.patience = patience
        self.loss, self.step, self.since = float("inf"), 0, 0
        self.model = None

    def note(self, record: dict) -> bool:
        """Counts an evaluation; gives whether it is the best so far."""
        if "eval_loss" not in record:
            return False
        if record["eval_loss"] < self.loss:
            self.loss, self.step, self.since = record["eval_loss"], record["step"], 0
            return True
        self.since += 1
        return False

    def replay(self, step: int, history: list[dict]) -> None:
        for record in history:
            self.note(record)

    def exhausted(self, record: dict) -> bool:
        return bool(self.patience) and self.since >= self.patience
