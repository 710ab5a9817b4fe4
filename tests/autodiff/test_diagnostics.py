"""Gradient diagnostics: layer norms, zero fractions after casts, rollout Jacobian spectra."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim.autodiff as ad


def test_layer_gradient_norms_match_manual(getkey):
    mlp = eqx.nn.MLP(3, 2, 8, 3, key=getkey())
    x = jax.random.normal(getkey(), (3,))
    grads = eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2))(mlp)
    norms = ad.layer_gradient_norms(grads)
    assert list(norms) == [f"layers[{i}]" for i in range(4)]
    for i, layer in enumerate(grads.layers):
        manual = jnp.sqrt(jnp.sum(layer.weight**2) + jnp.sum(layer.bias**2))
        assert norms[f"layers[{i}]"] == pytest.approx(float(manual), rel=1e-12)
    with pytest.raises(ValueError, match="no floating"):
        ad.layer_gradient_norms({"a": jnp.arange(3)})


def test_zero_fraction_underflow_and_scaling():
    g = {"small": jnp.full(4, 1e-9), "mid": jnp.array([1e-6, 1e-3, 0.0, 1.0])}
    f16 = ad.zero_fraction(g, jnp.float16)
    assert float(f16["['small']"]) == 1.0  # below float16's least subnormal 6e-8
    assert float(f16["['mid']"]) == 0.25  # 1e-6 is a float16 subnormal; the 0.0 stays zero
    bf16 = ad.zero_fraction(g, jnp.bfloat16)
    assert float(bf16["['small']"]) == 0.0  # bfloat16 has float32's exponent range
    scaled = ad.zero_fraction(g, jnp.float16, scale=2.0**16)
    assert float(scaled["['small']"]) == 0.0
    with pytest.raises(ValueError, match="scale"):
        ad.zero_fraction(g, jnp.float16, scale=0.0)


def test_rollout_jacobian_spectrum(getkey):
    W = jax.random.normal(getkey(), (4, 4)) / 2
    xs = jax.random.normal(getkey(), (6, 4))
    step = lambda h, x: (jnp.tanh(W @ h + x), h)
    h0 = jax.random.normal(getkey(), (4,))
    sv = ad.rollout_jacobian_spectrum(step, h0, xs)
    assert sv.shape == (6, 4)
    h = h0
    for t in range(6):
        J = jax.jacobian(lambda h, x=xs[t]: step(h, x)[0])(h)
        np.testing.assert_allclose(sv[t], np.linalg.svd(J, compute_uv=False), rtol=1e-10)
        h = step(h, xs[t])[0]
    # a linear step without inputs: the spectrum of A at every step; pytree states work
    A = jnp.diag(jnp.array([2.0, 0.5]))
    sv = ad.rollout_jacobian_spectrum(
        lambda s, _: ({"a": A @ s["a"]}, None), {"a": jnp.ones(2)}, length=3
    )
    np.testing.assert_allclose(sv, np.tile([2.0, 0.5], (3, 1)), rtol=1e-14)
