"""Saved models: a diffsim checkpoint with a JSON header naming the model, its
hyperparameters, dtype and the layout version, then its arrays (equinox leaves): no
pickle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp

from .._checkpoint import load_checkpoint, read_metadata, save_checkpoint
from ._models import AbstractEnergyModel, astype, make_model, model_name

MODEL_FILE = "model.eqx"
BEST_FILE = "best.eqx"
# The parameter layout. 2: equinox's Linear/MLP/Embedding layers (weights stored
# (out, in)); files without a version were written with the hand-written layers
# before, whose square weights would load transposed without a word: they are refused.
MODEL_FORMAT = 2


def save_model(path: str | os.PathLike, model: AbstractEnergyModel, metadata: dict | None = None):
    """Writes `model` atomically: its name, hyperparameters, dtype and layout version
    (`model_format`), then its arrays; `metadata` (JSON-able) is added to the header.

    **Returns:** the path written.

    **Example:** `save_model(run_dir / "model.eqx", model, {"step": 5000})`.
    """
    meta = {
        "model": model_name(model),
        "model_format": MODEL_FORMAT,
        "hyperparameters": model.hyperparameters(),
        "dtype": str(model.scale.dtype),
        **(metadata or {}),
    }
    return save_checkpoint(path, model, meta)


def load_model(path: str | os.PathLike) -> AbstractEnergyModel:
    """Gives the model saved by `save_model` (a file, or a run directory holding
    `model.eqx`).

    **Raises:** `FileNotFoundError` naming what is missing; `ValueError` if the file
    is not a saved diffsim model, or was saved in an older parameter layout.

    **Example:** `model = load_model("runs/potential_train-.../")`.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / MODEL_FILE).exists():
            raise FileNotFoundError(
                f"{path}: no {MODEL_FILE} in this directory (not a trained model)"
            )
        path = path / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        meta = read_metadata(path)
    except (ValueError, json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{path}: not a diffsim model file") from None
    if "model" not in meta or "hyperparameters" not in meta:
        raise ValueError(f"{path}: a diffsim checkpoint, but not a saved model")
    version = meta.get("model_format", 1)
    if version != MODEL_FORMAT:
        raise ValueError(
            f"{path}: saved in model format {version}, this diffsim reads format "
            f"{MODEL_FORMAT} (equinox layers since diffsim.potentials split from "
            "diffsim.molecular); retrain the model, e.g. rerun its potential_train config"
        )
    hyper = dict(meta["hyperparameters"])
    elements = hyper.pop("elements")
    like = make_model(meta["model"], elements, key=jax.random.key(0), **hyper)
    like = astype(like, jnp.dtype(meta.get("dtype", "float32")))
    model, _ = load_checkpoint(path, like)
    return model
