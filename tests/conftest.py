"""Strict test settings: float64 for gradient and identity checks, rank promotion raises.

Tests that need float32 (speed, drift in single precision) create float32 arrays
explicitly; x64 only changes the default dtype.
"""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
# The CLI runs of the tests (subprocesses included) leave the user's compilation cache alone.
os.environ.setdefault("DIFFSIM_COMPILE_CACHE", "off")

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
