"""Transposed convolution as the VJP of convolution: lax.conv_transpose and the adjoint identity."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import diffsim.autodiff as ad

DN = {1: ("NCH", "OIH", "NCH"), 2: ("NCHW", "OIHW", "NCHW")}


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_conv_transpose_equals_lax(nd, stride, padding, k, getkey):
    n = 7 if nd == 2 else 11
    x = jax.random.normal(getkey(), (2, 3) + (n,) * nd)
    w = jax.random.normal(getkey(), (5, 3) + (k,) * nd)
    y = jax.random.normal(getkey(), ad.conv(x, w, stride, padding).shape)
    ours = ad.conv_transpose(y, w, stride, padding)
    lax_t = jax.lax.conv_transpose(
        y, w, (stride,) * nd, padding, dimension_numbers=DN[nd], transpose_kernel=True
    )
    np.testing.assert_allclose(ours, lax_t, rtol=1e-12, atol=1e-12)
    # without transpose_kernel, lax wants the kernel flipped and its channel axes swapped
    flipped = jnp.flip(w, axis=tuple(range(2, 2 + nd))).swapaxes(0, 1)
    lax_f = jax.lax.conv_transpose(y, flipped, (stride,) * nd, padding, dimension_numbers=DN[nd])
    np.testing.assert_allclose(ours, lax_f, rtol=1e-12, atol=1e-12)
    assert ours.shape[2:] == tuple(ad.transposed_size(m, k, stride, padding) for m in y.shape[2:])


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_adjoint_identity(nd, stride, padding, getkey):
    # any input size, including ones lax.conv_transpose would not restore
    n = 10 if nd == 1 else 8
    x = jax.random.normal(getkey(), (2, 3) + (n,) * nd)
    w = jax.random.normal(getkey(), (4, 3) + (3,) * nd)
    Cx = ad.conv(x, w, stride, padding)
    y = jax.random.normal(getkey(), Cx.shape)
    CTy = ad.conv_transpose(y, w, stride, padding, input_size=(n,) * nd)
    lhs, rhs = jnp.vdot(Cx, y), jnp.vdot(x, CTy)
    assert abs(lhs - rhs) <= 1e-12 * (abs(lhs) + 1)


def test_conv_transpose_layer_gradients(getkey):
    layer = ad.ConvTranspose(4, 2, 3, stride=2, key=getkey())
    y = jax.random.normal(getkey(), (4, 5, 5))
    assert layer(y).shape == (2, 10, 10)
    check_grads(lambda w, y: eqx.tree_at(lambda m: m.weight, layer, w)(y), (layer.weight, y),
                order=1, modes=["rev"])
    layer1 = ad.ConvTranspose(1, 3, 2, stride=3, padding="VALID", num_spatial_dims=1, key=getkey())
    assert layer1(jnp.ones((1, 4))).shape == (3, 12)


def test_conv_errors():
    w = jnp.ones((2, 3, 3, 3))
    with pytest.raises(ValueError, match="padding"):
        ad.conv(jnp.ones((1, 3, 5, 5)), w, 1, "FULL")
    with pytest.raises(ValueError, match="stride"):
        ad.conv(jnp.ones((1, 3, 5, 5)), w, 0)
    with pytest.raises(ValueError, match="axes"):
        ad.conv(jnp.ones((3, 5, 5)), w)
    with pytest.raises(ValueError, match="input_size"):
        ad.conv_transpose(jnp.ones((1, 2, 3, 3)), w, 2, "SAME", input_size=(9, 9))
