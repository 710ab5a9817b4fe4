"""`solve`'s interface: pytrees, jit, vmap, no recompiles, dtypes, errors on bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim
from diffsim.ode import (
    RK4,
    ContinuousAdjoint,
    Dopri5,
    Euler,
    Leapfrog,
    ReversibleSolve,
    solve,
)

decay = lambda t, y, k: -k * y


def test_pytree_state_and_saved_times():
    f = lambda t, y, k: {"x": -k * y["x"], "v": (y["v"][0], -y["v"][1])}
    y0 = {"x": jnp.ones(3), "v": (jnp.array(1.0), jnp.array([2.0, 3.0]))}
    ts = np.linspace(0.0, 1.0, 5)
    ys = solve(f, y0, ts, 2.0, solver=RK4(), dt=0.01)
    assert ys["x"].shape == (5, 3) and ys["v"][1].shape == (5, 2)
    np.testing.assert_allclose(ys["x"][:, 0], np.exp(-2 * ts), rtol=1e-8)
    np.testing.assert_allclose(ys["v"][1][:, 1], 3 * np.exp(-ts), rtol=1e-8)
    assert float(ys["x"][0, 0]) == 1.0


def test_float32_state_stays_float32():
    y0 = jnp.ones(3, jnp.float32)
    ys = solve(decay, y0, np.linspace(0.0, 1.0, 3).astype(np.float32), jnp.float32(1.0), dt=0.1)
    assert ys.dtype == jnp.float32
    np.testing.assert_allclose(ys[-1], np.exp(-1.0), rtol=1e-5)


def test_jit_vmap_and_no_recompile():
    ts = jnp.linspace(0.0, 1.0, 4)

    @jax.jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def run(y0, k, ts):
        # Traced ts: the number of steps per interval comes from n_steps.
        return solve(decay, y0, ts, k, solver=RK4(), n_steps=20)

    batch = jnp.linspace(0.5, 2.0, 8)
    ys = jax.vmap(run, in_axes=(0, None, None))(batch[:, None], 1.5, ts)
    assert ys.shape == (8, 4, 1)
    np.testing.assert_allclose(ys[:, -1, 0], batch * np.exp(-1.5), rtol=1e-7)
    for k in [0.5, 1.0, 2.0]:  # new values, same shapes: no retrace
        run(jnp.ones(1), k, ts + k)


def test_vmap_adaptive_over_initial_conditions():
    y0s = jnp.linspace(0.5, 2.0, 4)[:, None] * jnp.ones((1, 2))
    ys = jax.jit(
        jax.vmap(lambda y: solve(decay, y, np.array([0.0, 1.0]), 3.0, solver=Dopri5(), rtol=1e-9))
    )(y0s)
    np.testing.assert_allclose(ys[:, -1], y0s * np.exp(-3.0), rtol=1e-7)


def test_reversible_with_user_inverse():
    f = lambda t, y, w: (y[1], -(w**2) * y[0])
    inverse = lambda y_next, x: Leapfrog().inverse_step(f, x[0], y_next, 1.5, x[1])
    ts = np.linspace(0.0, 1.0, 3)

    def loss(grad):
        return lambda q0: solve(f, (q0, 0.0), ts, 1.5, solver=Leapfrog(), dt=0.1, grad=grad)[0][-1]

    g_user = jax.grad(loss(diffsim.Reversible(inverse)))(1.0)
    g_built = jax.grad(loss(ReversibleSolve()))(1.0)
    g_bptt = jax.grad(loss(diffsim.BPTT()))(1.0)
    np.testing.assert_allclose(g_user, g_bptt, rtol=1e-12)
    np.testing.assert_allclose(g_built, g_bptt, rtol=1e-12)


def test_steps_exhausted():
    f = lambda t, y, args: jnp.cos(50 * t) * 50 * y
    ts = np.array([0.0, 5.0])
    with pytest.raises(RuntimeError, match=r"^solve: max_steps=8 attempts were used up") as e:
        jax.block_until_ready(solve(f, jnp.ones(1), ts, solver=Dopri5(), max_steps=8))
    assert len(str(e.value).splitlines()) == 1  # the reason, not 26 lines of stack
    ys = solve(f, jnp.ones(1), ts, solver=Dopri5(), max_steps=8, throw=False)
    assert np.isnan(ys[-1]).all() and not np.isnan(ys[0]).any()


def test_single_time():
    y0 = jnp.array([1.0, -2.0])
    ys = solve(decay, y0, np.array([0.5]), 1.0, dt=0.1)
    assert ys.shape == (1, 2)
    np.testing.assert_array_equal(ys[0], y0)  # the one saved time is t0: y(t0) = y0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dt=0.0), "dt"),
        (dict(dt=-0.1), "dt"),
        (dict(ts=np.array([0.0, 1.0, 1.0]), dt=0.1), "ts"),
        (dict(ts=np.array([1.0, 0.0]), dt=0.1), "ts"),
        (dict(y0=jnp.array([1.0, jnp.nan]), dt=0.1), "y0"),
        (dict(solver=Dopri5(), rtol=0.0), "rtol"),
        (dict(solver=Dopri5(), atol=-1.0), "atol"),
        (dict(solver=RK4()), "dt"),  # fixed-step solver without dt
        (dict(dt=0.1, n_steps=3), "n_steps"),
        (dict(dt=0.1, grad=ReversibleSolve()), "reversible"),
        (dict(solver=Dopri5(), grad=ReversibleSolve()), "fixed steps"),
        (dict(y0=jnp.array([1, 2]), dt=0.1), "y0"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match, unchecked):
    call = dict(y0=jnp.ones(2), ts=np.array([0.0, 1.0]))
    call.update(kwargs)
    with pytest.raises(ValueError, match=match):
        solve(decay, call.pop("y0"), call.pop("ts"), 1.0, **call)


def test_bad_grad_and_solver_types():
    with pytest.raises(TypeError, match="grad"):
        solve(decay, jnp.ones(2), np.array([0.0, 1.0]), 1.0, dt=0.1, grad="bptt")
    with pytest.raises(TypeError, match="solver"):
        solve(decay, jnp.ones(2), np.array([0.0, 1.0]), 1.0, dt=0.1, solver="rk4")


def test_traced_bad_input_raises_under_jit():
    run = jax.jit(lambda y0, ts: solve(decay, y0, ts, 1.0, n_steps=4))
    with pytest.raises(Exception, match="strictly increasing"):
        jax.block_until_ready(run(jnp.ones(2), jnp.array([0.0, 2.0, 1.0])))
    with pytest.raises(Exception, match="y0 contains NaN"):
        jax.block_until_ready(run(jnp.array([1.0, jnp.nan]), jnp.array([0.0, 1.0, 2.0])))


def test_continuous_adjoint_with_args_pytree_and_closure():
    def loss(k, s, grad):
        # `s` is closed over: its gradient comes through the closure conversion.
        f = lambda t, y, args: -args["k"] * y + s * jnp.sin(t)
        ts = np.array([0.0, 1.0])
        return jnp.sum(solve(f, jnp.ones(2), ts, {"k": k}, solver=Euler(), dt=1e-3, grad=grad)[-1])

    g_exact = np.array(jax.grad(loss, argnums=(0, 1))(1.2, 0.3, diffsim.BPTT()))
    g_cont = np.array(jax.grad(loss, argnums=(0, 1))(1.2, 0.3, ContinuousAdjoint()))
    # Euler: the continuous adjoint differs from the discrete gradient at O(h).
    err = np.abs(g_cont - g_exact) / np.abs(g_exact)
    assert np.all(err < 1e-2) and np.all(err > 0), err
