"""Matrix-product precision of the energy models and the geometry (TF32 on GPUs).

No GPU runs here: the tests check that the chosen precision reaches the compiled program
(the StableHLO `dot_general` precision config), forward and backward, which is what
decides TF32 on an accelerator.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim.molecular as md
import diffsim.potentials as pot

MODELS = {"schnet": pot.SchNet, "painn": pot.PaiNN}


def _dot_precisions(fn, *args) -> list[str]:
    text = jax.jit(fn).lower(*args).as_text()
    dots = [line for line in text.splitlines() if "dot_general" in line]
    assert dots, "no matrix products in the program"
    return [re.search(r"precision = \[(\w+), (\w+)\]", d).group(1) for d in dots]


def _system():
    r = jnp.asarray(np.random.default_rng(0).uniform(-1.5, 1.5, (6, 3)), jnp.float32)
    return r, jnp.array([0, 1, 2, 0, 1, 2])


# PaiNN in the slow tier (default tier under 10 min); SchNet keeps the default one.
@pytest.mark.parametrize("name", ["schnet", pytest.param("painn", marks=pytest.mark.slow)])
def test_energy_and_forces_run_at_highest_precision_by_default(name):
    model = MODELS[name]((1, 6, 8), features=4, layers=2, n_rbf=4, key=jax.random.key(0))
    assert model.precision == "highest"
    r, s = _system()
    grad = jax.value_and_grad(lambda x, m=model: m(x, s))
    assert set(_dot_precisions(grad, r)) == {"HIGHEST"}  # forward and backward products
    fast = model.with_precision("default")
    # "default" defers to JAX's global setting, which some libraries change at import
    # (dynamax sets it to float32, i.e. HIGHEST, and the messages tests import it into the
    # same worker): read the program under JAX's own default.
    with jax.default_matmul_precision(None):
        assert set(_dot_precisions(jax.value_and_grad(lambda x: fast(x, s)), r)) == {"DEFAULT"}
    # The switch in the constructor and through a save (hyperparameters) too.
    built = MODELS[name](
        (1, 6), features=4, layers=1, n_rbf=4, precision="default", key=jax.random.key(0)
    )
    assert built.precision == "default" and built.hyperparameters()["precision"] == "default"
    assert fast.embedding is model.embedding  # the parameters are shared


def test_default_precision_follows_jax_setting():
    model = pot.PaiNN(
        (1,), features=4, layers=1, n_rbf=4, precision="default", key=jax.random.key(0)
    )
    r, _ = _system()
    s = jnp.zeros(6, int)
    with jax.default_matmul_precision("highest"):
        assert set(_dot_precisions(lambda x: model(x, s), r)) == {"HIGHEST"}


def test_bad_precision_is_named():
    with pytest.raises(ValueError, match="precision must be one of"):
        pot.SchNet((1,), precision="tf32", key=jax.random.key(0))
    with pytest.raises(ValueError, match="precision must be one of"):
        pot.PaiNN((1,), features=4, layers=1, key=jax.random.key(0)).with_precision("fast")


def test_triclinic_geometry_and_stress_run_at_highest_precision():
    cell = jnp.array([[6.0, 0.0, 0.0], [1.0, 6.0, 0.0], [0.5, 0.5, 6.0]], jnp.float32)
    space = md.TriclinicBox(cell)
    r = jnp.asarray(np.random.default_rng(1).uniform(0, 5, (8, 3)), jnp.float32)
    energy = md.lennard_jones(space, sigma=1.0, epsilon=1.0)

    def stress(x):
        return md.stress(energy, x, space)

    assert set(_dot_precisions(stress, r)) == {"HIGHEST"}
    assert set(_dot_precisions(lambda x: space.wrap(x), r)) == {"HIGHEST"}
