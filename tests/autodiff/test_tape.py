"""The tape AD and dual numbers against jax.grad / jax.jvp on random composite functions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import diffsim.autodiff as ad

UNARY = ["sin", "cos", "tanh", "sigmoid", "exp_tanh", "log1p_sq", "square", "scale", "matvec"]
BINARY = ["add", "sub", "mul", "div", "add_sum"]


class _Jax:
    sin, cos, tanh, exp, log, sum = jnp.sin, jnp.cos, jnp.tanh, jnp.exp, jnp.log, jnp.sum
    sigmoid = staticmethod(jax.nn.sigmoid)


def evaluate(program, x, W, lib):
    """Runs a random program; operands index earlier nodes, so paths reconverge."""
    nodes = [x]
    for op, i, j in program:
        a, b = nodes[i % len(nodes)], nodes[j % len(nodes)]
        if op == "sin":
            y = lib.sin(a)
        elif op == "cos":
            y = lib.cos(a)
        elif op == "tanh":
            y = lib.tanh(a)
        elif op == "sigmoid":
            y = lib.sigmoid(a)
        elif op == "exp_tanh":
            y = lib.exp(lib.tanh(a))
        elif op == "log1p_sq":
            y = lib.log(1.0 + a * a)
        elif op == "square":
            y = a**2
        elif op == "scale":
            y = 0.5 * a - 1.0
        elif op == "matvec":
            y = W @ a
        elif op == "add":
            y = a + b
        elif op == "sub":
            y = a - b
        elif op == "mul":
            y = a * b
        elif op == "div":
            y = a / (1.0 + b * b)
        else:  # add_sum: a scalar broadcast back onto a vector
            y = a + lib.sum(b)
        nodes.append(y)
    return lib.sum(nodes[-1]) + lib.sum(x * nodes[len(nodes) // 2])


programs = st.lists(
    st.tuples(st.sampled_from(UNARY + BINARY), st.integers(0, 30), st.integers(0, 30)),
    min_size=1,
    max_size=12,
)


@st.composite
def inputs(draw):
    n = draw(st.integers(1, 4))
    fl = st.floats(-2.0, 2.0, allow_nan=False)
    x = np.array(draw(st.lists(fl, min_size=n, max_size=n)))
    W = np.array(draw(st.lists(fl, min_size=n * n, max_size=n * n))).reshape(n, n) / n
    return x, W


def _close(a, b, rtol=1e-12):
    scale = max(1.0, float(np.max(np.abs(b))))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


@settings(max_examples=40, deadline=None)
@given(programs, inputs())
def test_tape_grad_equals_jax_grad(program, xW):
    x, W = xW
    gx, gW = ad.grad(lambda x, W: evaluate(program, x, W, ad))(x, W)
    jx, jW = jax.grad(lambda x, W: evaluate(program, x, W, _Jax), (0, 1))(x, W)
    _close(gx, np.asarray(jx))
    _close(gW, np.asarray(jW))


@settings(max_examples=25, deadline=None)
@given(programs, inputs(), st.integers(0, 2**31 - 1))
def test_dual_jvp_equals_jax_jvp(program, xW, seed):
    x, W = xW
    v = np.random.default_rng(seed).normal(size=x.shape)
    y, dy = ad.jvp(lambda x: evaluate(program, x, W, ad), (x,), (v,))
    jy, jdy = jax.jvp(lambda x: evaluate(program, x, W, _Jax), (x,), (v,))
    _close(y, np.asarray(jy))
    _close(dy, np.asarray(jdy))


def test_reconverging_paths_are_summed():
    # x feeds four uses; d/dx (x*x + sin(x)*x) = 2x + cos(x) x + sin(x)
    f = lambda x: x * x + ad.sin(x) * x
    x = 0.7
    assert ad.grad(f)(x) == pytest.approx(2 * x + np.cos(x) * x + np.sin(x), rel=1e-15)
    # the tape has one record per operation, in execution order
    tape = ad.Tape()
    v = ad.Var(x, tape)
    out = f(v)
    assert len(tape.records) == 5 and tape.records[-1][0] is out
    grads = tape.backward(out)
    assert grads[id(v)] == pytest.approx(ad.grad(f)(x), rel=1e-15)


def test_matmul_shapes_and_forward_grad():
    rng = np.random.default_rng(0)
    A, B, v = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=4)
    f = lambda A, B, v: ad.sum(ad.tanh(A @ B)) + ad.sum(v @ B) + (A @ v) @ (A @ v)
    fj = lambda A, B, v: jnp.sum(jnp.tanh(A @ B)) + jnp.sum(v @ B) + (A @ v) @ (A @ v)
    for g, j in zip(ad.grad(f)(A, B, v), jax.grad(fj, (0, 1, 2))(A, B, v)):
        _close(g, np.asarray(j))
    fv = lambda v: f(A, B, v)
    _close(ad.forward_grad(fv)(v), np.asarray(jax.grad(lambda v: fj(A, B, v))(v)))
    val, g = ad.value_and_grad(fv)(v)
    assert val == pytest.approx(float(fj(A, B, v)), rel=1e-14)


def test_errors():
    with pytest.raises(ValueError, match="scalar"):
        ad.grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(ValueError, match="tangent"):
        ad.jvp(lambda x: x, (np.ones(3),), (np.ones(2),))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        ad.grad(lambda x: ad.sum(x @ x))(np.ones((2, 2, 2)))
