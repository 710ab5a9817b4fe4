"""The suite's JAX set-up lets several pytest-xdist workers share one accelerator."""

import os
import runpy
from pathlib import Path

import jax
import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
VARS = (
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "DIFFSIM_TESTS_SET_PREALLOCATE",
)


def test_this_worker_does_not_preallocate():
    # The variables are read when the backend starts: this process (an xdist worker under
    # `make test`) started it after conftest ran, so they hold for every test here.
    assert jax.devices()
    prealloc = os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE")
    fraction = os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION")
    # Set by conftest ("false") or by the user: never JAX's default of 75% per worker.
    assert prealloc is not None or fraction is not None
    if os.environ.get("DIFFSIM_TESTS_SET_PREALLOCATE") == "1":
        assert prealloc == "false" and fraction is None


@pytest.mark.parametrize(
    "user, expected",
    [
        ({}, {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}),
        # A user's choice stands: preallocation kept on, or a memory fraction of their own.
        ({"XLA_PYTHON_CLIENT_PREALLOCATE": "true"}, {"XLA_PYTHON_CLIENT_PREALLOCATE": "true"}),
        ({"XLA_PYTHON_CLIENT_MEM_FRACTION": ".2"}, {"XLA_PYTHON_CLIENT_MEM_FRACTION": ".2"}),
    ],
)
def test_conftest_turns_off_preallocation_unless_the_user_chose(monkeypatch, user, expected):
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in user.items():
        monkeypatch.setenv(name, value)
    runpy.run_path(str(CONFTEST))  # what a fresh worker runs before it imports jax
    for name in VARS[:2]:
        assert os.environ.get(name) == expected.get(name), name
