"""The control solvers' compiled programs have no host callbacks (JAX's persistent
compilation cache refuses programs that do), and bad inputs still give clear errors."""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from diffsim.control import (
    MPC,
    Cost,
    LinearDynamics,
    ilqr,
    quadratic,
    terminal_quadratic,
)
from diffsim.control._ilqr import _ALPHAS, _ilqr_compiled

# A host callback lowers to a custom call whose target names a Python callback
# (`xla_ffi_python_cpu_callback` on the CPU under jax 0.10; `..._gpu_callback` on a GPU).
_CALLBACK = re.compile(r"custom_call @\w*callback")


def _callbacks(lowered) -> list[str]:
    return _CALLBACK.findall(lowered.as_text())


def _problem():
    A = jnp.array([[1.0, 0.1], [0.0, 1.0]])
    B = jnp.array([[0.005], [0.1]])
    cost = Cost(quadratic(jnp.eye(2), 0.01 * jnp.eye(1)), terminal_quadratic(10 * jnp.eye(2)))
    return LinearDynamics(A, B), cost, jnp.array([1.0, 0.0]), jnp.zeros((4, 1))


def test_compiled_solvers_have_no_host_callbacks():
    model, cost, x0, us0 = _problem()
    settings = (20, 1e-9, 1e-6, 10.0, 1e10)
    # The program `ilqr` compiles (what every experiment runs) ...
    solver = _ilqr_compiled.lower(model, cost, x0, us0, 0, settings, _ALPHAS)
    assert _callbacks(solver) == []
    # ... MPC's compiled control step ...
    mpc = MPC(model, cost, horizon=4, iterations=2)
    step = MPC._step.lower(mpc, jnp.zeros(2), jnp.zeros((4, 1)), jnp.asarray(3))
    assert _callbacks(step) == []
    # ... while the same solver inside a caller's jit keeps its documented eqx.error_if
    # checks, which the marker finds (so it is the right marker).
    wrapped = jax.jit(lambda u: ilqr(model, cost, x0, u, throw=True)).lower(us0)
    assert len(_callbacks(wrapped)) >= 2


def test_bad_inputs_still_raise_clearly(unchecked):
    model, cost, x0, us0 = _problem()
    # Concrete inputs: ValueError on the host, before anything compiles.
    with pytest.raises(ValueError, match="ilqr: x0 contains NaN"):
        ilqr(model, cost, jnp.array([jnp.nan, 0.0]), us0)
    with pytest.raises(ValueError, match="ilqr: us0 contains inf"):
        ilqr(model, cost, x0, us0.at[2, 0].set(jnp.inf))
    mpc = MPC(model, cost, horizon=4)
    with pytest.raises(ValueError, match="MPC.step: x contains NaN"):
        mpc.step(jnp.array([0.0, jnp.nan]), us0, jnp.asarray(0))
    # throw=True: one iteration cannot confirm convergence; raised on the host after the
    # compiled solve, with the message eqx.error_if gives under a caller's jit.
    res = ilqr(model, cost, x0, us0, max_iter=1)
    assert not bool(res.converged)
    with pytest.raises(eqx.EquinoxRuntimeError, match="ilqr: did not converge"):
        ilqr(model, cost, x0, us0, max_iter=1, throw=True)
    # Traced inputs (a caller's jit): eqx.error_if, as documented.
    with pytest.raises(eqx.EquinoxRuntimeError, match="ilqr: x0 contains NaN"):
        eqx.filter_jit(lambda x: ilqr(model, cost, x, us0, max_iter=1).us)(jnp.array([jnp.nan, 0]))
