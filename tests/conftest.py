"""Strict test settings: float64 for gradient and identity checks, rank promotion raises.

Tests that need float32 (speed, drift in single precision) create float32 arrays
explicitly; x64 only changes the default dtype.

On a GPU machine the pytest-xdist workers share one accelerator: JAX's client would
preallocate 75% of its memory in each worker, and the second worker would die out of
memory at collection, so the workers allocate as they go (unless the user chose an
allocation: `XLA_PYTHON_CLIENT_PREALLOCATE` or `XLA_PYTHON_CLIENT_MEM_FRACTION` set).
This must happen before jax is imported.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
# The CLI runs of the tests (subprocesses included) leave the user's compilation cache alone.
os.environ.setdefault("DIFFSIM_COMPILE_CACHE", "off")
if not any(
    name in os.environ
    for name in ("XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION")
):
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    # Inherited by the xdist workers, so that they know it was not the user's choice.
    os.environ["DIFFSIM_TESTS_SET_PREALLOCATE"] = "1"

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def getkey():
    """Returns a function giving a fresh PRNG key on each call (deterministic per test)."""
    key = [jax.random.key(0)]

    def _getkey():
        key[0], sub = jax.random.split(key[0])
        return sub

    return _getkey


@pytest.fixture
def unchecked():
    """Turns off jaxtyping's annotation checks for one test.

    The suite runs with jaxtyping's import hook (beartype), so a wrong shape or type is a
    `TypeCheckError` at the call. Tests of the library's own validation (the clear
    `ValueError` a user without the hook gets) take this fixture.
    """
    import jaxtyping

    jaxtyping.config.update("jaxtyping_disable", True)
    yield
    jaxtyping.config.update("jaxtyping_disable", False)
