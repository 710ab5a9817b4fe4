"""Transposed convolution as the VJP of convolution: lax.conv_transpose and the adjoint identity."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import diffsim.autodiff as ad

DN = {1: ("NCH", "OIH", "NCH"), 2: ("NCHW", "OIHW", "NCHW")}


def _case(nd, stride, padding, k, getkey):
    n = 7 if nd == 2 else 11  # not a multiple of 2 or 3
    x = jax.random.normal(getkey(), (2, 3) + (n,) * nd)
    w = jax.random.normal(getkey(), (5, 3) + (k,) * nd)
    Cx = ad.conv(x, w, stride, padding)
    y = jax.random.normal(getkey(), Cx.shape)

    @jax.jit
    def compute(x, w, y):
        ours = ad.conv_transpose(y, w, stride, padding)
        lax_t = jax.lax.conv_transpose(
            y, w, (stride,) * nd, padding, dimension_numbers=DN[nd], transpose_kernel=True
        )
        # without transpose_kernel, lax wants the kernel flipped and its channel axes swapped
        flipped = jnp.flip(w, axis=tuple(range(2, 2 + nd))).swapaxes(0, 1)
        lax_f = jax.lax.conv_transpose(
            y, flipped, (stride,) * nd, padding, dimension_numbers=DN[nd]
        )
        # the adjoint identity at the original size (which lax may not restore)
        CTy = ad.conv_transpose(y, w, stride, padding, input_size=x.shape[2:])
        return ours, lax_t, lax_f, jnp.vdot(Cx, y), jnp.vdot(x, CTy)

    ours, lax_t, lax_f, lhs, rhs = compute(x, w, y)
    np.testing.assert_allclose(ours, lax_t, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours, lax_f, rtol=1e-12, atol=1e-12)
    assert ours.shape[2:] == tuple(ad.transposed_size(m, k, stride, padding) for m in y.shape[2:])
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)


GRID = [(nd, s, p) for nd in (1, 2) for s in (1, 2, 3) for p in ("SAME", "VALID")]
# The default tier covers 2-D and 1-D at stride 2 (the transposed_conv_symmetry test runs
# the whole grid once more with kernel 3); the slow tier all of it.
FAST = {(2, s, p) for s in (1, 2, 3) for p in ("SAME", "VALID")} | {(1, 2, "SAME")}


@pytest.mark.parametrize(
    "nd,stride,padding",
    [c if c in FAST else pytest.param(*c, marks=pytest.mark.slow) for c in GRID],
)
def test_conv_transpose_equals_lax_and_is_adjoint(nd, stride, padding, getkey):
    _case(nd, stride, padding, 3, getkey)


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_other_kernel_sizes(k, padding, getkey):
    _case(2, 2, padding, k, getkey)
    _case(1, 3, padding, k, getkey)


def test_conv_transpose_layer_gradients(getkey):
    layer = ad.ConvTranspose(4, 2, 3, stride=2, key=getkey())
    y = jax.random.normal(getkey(), (4, 5, 5))
    assert layer(y).shape == (2, 10, 10)
    f = jax.jit(lambda w, y: eqx.tree_at(lambda m: m.weight, layer, w)(y))
    check_grads(f, (layer.weight, y), order=1, modes=["rev"])
    layer1 = ad.ConvTranspose(1, 3, 2, stride=3, padding="VALID", num_spatial_dims=1, key=getkey())
    assert layer1(jnp.ones((1, 4))).shape == (3, 12)


def test_conv_errors(unchecked):
    w = jnp.ones((2, 3, 3, 3))
    with pytest.raises(ValueError, match="padding"):
        ad.conv(jnp.ones((1, 3, 5, 5)), w, 1, "FULL")
    with pytest.raises(ValueError, match="stride"):
        ad.conv(jnp.ones((1, 3, 5, 5)), w, 0)
    with pytest.raises(ValueError, match="axes"):
        ad.conv(jnp.ones((3, 5, 5)), w)
    with pytest.raises(ValueError, match="input_size"):
        ad.conv_transpose(jnp.ones((1, 2, 3, 3)), w, 2, "SAME", input_size=(9, 9))
