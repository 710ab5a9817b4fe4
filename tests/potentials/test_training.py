"""Force matching, saved models, the ASE calculator and `diffsim forces`."""

import json

import ase
import ase.units
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

import diffsim
import diffsim._train
import diffsim.potentials as pot
from diffsim.cli import main

# Compiled once per shape (eager op-by-op evaluation of a model is slower to start).
energy_and_forces = eqx.filter_jit(pot.energy_and_forces)


@pytest.fixture(scope="module")
def lj():
    """A small LJ13 data set labelled by ASE's LennardJones (generated here)."""
    return pot.generate_lj_clusters(60, equilibrate_steps=200, stride=5, seed=1)


def small(name, elements=(18,), cutoff=8.0, dtype=jnp.float64):
    model = pot.make_model(
        name, elements, cutoff=cutoff, features=8, layers=1, n_rbf=6, key=jax.random.key(0)
    )
    return pot.astype(model, dtype)


def test_fit_energy_scale_sets_reference_and_scale(lj):
    model = pot.fit_energy_scale(small("schnet"), lj)
    assert float(model.e_ref[0]) == pytest.approx(np.mean(lj.energies) / 13, rel=1e-10)
    assert float(model.scale) == pytest.approx(np.sqrt(np.mean(lj.forces**2)), rel=1e-10)


def test_evaluate_matches_a_direct_computation(lj):
    model = pot.fit_energy_scale(small("schnet"), lj)
    scores = pot.evaluate(model, lj, batch_size=16)  # 60 = 3 * 16 + 12: a padded last batch
    species = model.species_of(lj.numbers)
    e, f = eqx.filter_jit(pot.batch_energy_and_forces)(model, species, jnp.asarray(lj.positions))
    e_mae = 1000 * np.mean(np.abs(np.asarray(e) - lj.energies) / 13)
    f_mae = 1000 * np.mean(np.abs(np.asarray(f) - lj.forces))
    assert scores["frames"] == 60
    assert scores["energy_mae"] == pytest.approx(e_mae, rel=1e-10)
    assert scores["force_mae"] == pytest.approx(f_mae, rel=1e-10)


# Both models here run in the slow tier (default tier under 10 min): the early-stopping
# test trains in the default one.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["schnet", "painn"])
def test_training_reduces_test_force_error(lj, name):
    train, val, test = lj.split(40, 10, 10, seed=0)
    model = pot.fit_energy_scale(small(name), train)
    before = pot.evaluate(model, test)["force_mae"]
    res = pot.train_potential(
        model,
        train,
        val,
        steps=150,
        batch_size=8,
        lr=1e-2,
        eval_every=50,
        key=jax.random.key(1),
        progress=False,
    )
    after = pot.evaluate(res.model, test)["force_mae"]
    assert after < before / 2, (before, after)
    assert res.best_step in (50, 100, 150)


@pytest.mark.slow  # default tier under 10 min: resume is checked in tests/core/test_checkpoints.py
def test_interrupted_training_resumes_to_the_same_model(lj, tmp_path, monkeypatch):
    train, val, _ = lj.split(40, 10, 10, seed=0)
    kwargs = dict(
        steps=40,
        batch_size=8,
        lr=1e-2,
        eval_every=10,
        checkpoint_every=10,
        key=jax.random.key(3),
        progress=False,
    )
    full = pot.train_potential(small("schnet"), train, val, directory=tmp_path / "a", **kwargs)

    original = diffsim._train.save_checkpoint

    def dying(path, tree, metadata=None, **kwargs):
        out = original(path, tree, metadata, **kwargs)
        if metadata and metadata.get("step") == 20:
            raise KeyboardInterrupt  # killed right after the step-20 checkpoint
        return out

    monkeypatch.setattr(diffsim._train, "save_checkpoint", dying)
    with pytest.raises(KeyboardInterrupt):
        pot.train_potential(small("schnet"), train, val, directory=tmp_path / "b", **kwargs)
    monkeypatch.setattr(diffsim._train, "save_checkpoint", original)
    resumed = pot.train_potential(
        small("schnet"), train, val, directory=tmp_path / "b", resume=True, **kwargs
    )
    assert resumed.best_step == full.best_step
    for a, b in zip(jax.tree.leaves(full.model), jax.tree.leaves(resumed.model)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(FileExistsError):
        pot.train_potential(small("schnet"), train, val, directory=tmp_path / "a", **kwargs)


def test_early_stopping_keeps_the_best_model(lj, tmp_path):
    train, val, _ = lj.split(40, 10, 10, seed=0)
    # A learning rate far too large: validation gets worse and training stops early.
    res = pot.train_potential(
        small("schnet"),
        train,
        val,
        steps=400,
        batch_size=8,
        lr=0.5,
        eval_every=10,
        patience=3,
        key=jax.random.key(0),
        directory=tmp_path,
        progress=False,
    )
    evals = [r for r in res.history if "eval_loss" in r]
    assert evals[-1]["step"] < 400
    assert res.best_val_loss == min(r["eval_loss"] for r in evals)
    saved = pot.load_model(tmp_path / "best.eqx")
    assert pot.evaluate(saved, val)["force_mae"] == pytest.approx(
        pot.evaluate(res.model, val)["force_mae"], rel=1e-12
    )


def test_training_rejects_data_the_model_cannot_take(lj):
    copperish = pot.Dataset(
        numbers=np.full(13, 29),
        positions=lj.positions[:4],
        energies=lj.energies[:4],
        forces=lj.forces[:4],
    )
    with pytest.raises(ValueError, match="unknown species"):
        pot.train_potential(
            small("schnet"), copperish, steps=1, batch_size=2, key=jax.random.key(0)
        )
    with pytest.raises(ValueError, match="batch_size 100 exceeds"):
        pot.train_potential(small("schnet"), lj, steps=1, batch_size=100, key=jax.random.key(0))


# --- the calculator and the CLI -----------------------------------------------------------


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    """A saved (untrained but scaled) CHO model, as potential_train leaves it."""
    d = tmp_path_factory.mktemp("run")
    model = small("painn", elements=(1, 6, 8), cutoff=4.0)
    model = model.with_reference(jnp.array([-0.5, -1.0, -2.0]), 0.9)
    pot.save_model(d / "model.eqx", model)
    return d


def ethanol():
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=0)
    return atoms


def test_calculator_equals_the_model_and_runs_ase_md(trained_dir):
    from ase.md.verlet import VelocityVerlet

    model = pot.load_model(trained_dir)
    atoms = ethanol()
    atoms.calc = pot.DiffsimCalculator(trained_dir)
    e, f = energy_and_forces(model, model.species_of(atoms.numbers), jnp.asarray(atoms.positions))
    assert atoms.get_potential_energy() == pytest.approx(float(e), rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), np.asarray(f), atol=1e-12)
    num = calculate_numerical_forces(atoms, eps=1e-5)
    np.testing.assert_allclose(atoms.get_forces(), num, atol=1e-6)
    dyn = VelocityVerlet(atoms, timestep=0.2 * ase.units.fs)
    dyn.run(5)
    assert np.all(np.isfinite(atoms.get_forces()))


@pytest.mark.slow  # default tier under 10 min (the EMT stress test stays there)
def test_calculator_stress_equals_numerical_stress(trained_dir):
    from ase.build import bulk

    model = small("painn", elements=(6,), cutoff=2.5).with_reference(jnp.array([-1.0]), 0.9)
    atoms = bulk("C", "diamond", a=3.6, cubic=True).repeat((2, 2, 3))  # 96 atoms: a list
    # A sheared cell from the start, so every strained copy is triclinic: one compilation.
    atoms.set_cell(
        atoms.cell[:] + np.array([[0, 0.2, 0], [0, 0, 0], [0.1, 0, 0]]), scale_atoms=True
    )
    atoms.rattle(0.05, seed=1)
    atoms.calc = pot.DiffsimCalculator(model)
    s = atoms.get_stress()
    num = calculate_numerical_stress(atoms, eps=1e-5)
    np.testing.assert_allclose(s, num, atol=1e-7)
    # The neighbour-list path (above DENSE_LIMIT atoms) gives the dense path's forces.
    e, f = energy_and_forces(
        model,
        model.species_of(atoms.numbers),
        jnp.asarray(atoms.positions),
        jnp.asarray(atoms.cell[:]),
    )
    np.testing.assert_allclose(atoms.get_forces(), np.asarray(f), atol=1e-11)


def test_cli_forces_match_the_calculator(trained_dir, tmp_path, capsys):
    import ase.io

    frames = [ethanol(), ethanol()]
    frames[1].positions[0] += 0.1
    ase.io.write(tmp_path / "in.xyz", frames)
    out = tmp_path / "out.extxyz"
    assert (
        main(
            [
                "forces",
                "--model",
                str(trained_dir),
                "--structure",
                str(tmp_path / "in.xyz"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    back = ase.io.read(out, index=":")
    # The same structures as the CLI read them (xyz keeps 8 decimals).
    for atoms, written in zip(ase.io.read(tmp_path / "in.xyz", index=":"), back):
        atoms.calc = pot.DiffsimCalculator(trained_dir)
        assert written.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), 1e-12)
        # extxyz (ASE's writer) keeps forces to 8 decimals.
        np.testing.assert_allclose(written.get_forces(), atoms.get_forces(), atol=1e-8)
    capsys.readouterr()
    assert (
        main(
            [
                "forces",
                "--model",
                str(trained_dir),
                "--structure",
                str(tmp_path / "in.xyz"),
                "--index",
                "0",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "frame 0: 9 atoms, energy" in printed and printed.count("\n") == 11
    # The output never overwrites.
    assert (
        main(
            [
                "forces",
                "--model",
                str(trained_dir),
                "--structure",
                str(tmp_path / "in.xyz"),
                "--out",
                str(out),
            ]
        )
        == 2
    )


def test_cli_forces_errors_are_one_line(trained_dir, tmp_path, capsys):
    import ase.io
    from ase.build import bulk

    ase.io.write(tmp_path / "cu.xyz", bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3))
    (tmp_path / "bad.xyz").write_text("3\nnot a frame\nC 0 0\n")
    close = ethanol()
    close.positions[1] = close.positions[0] + 0.01
    ase.io.write(tmp_path / "close.xyz", close)
    cases = [
        (
            ["--model", str(tmp_path / "nope"), "--structure", str(tmp_path / "cu.xyz")],
            "no such file or directory",
        ),
        (
            ["--model", str(trained_dir), "--structure", str(tmp_path / "cu.xyz")],
            "unknown species: atomic numbers [29]",
        ),
        (["--model", str(trained_dir), "--structure", str(tmp_path / "bad.xyz")], "cannot read"),
        (
            ["--model", str(trained_dir), "--structure", str(tmp_path / "close.xyz")],
            "overlapping atoms",
        ),
        (["--model", str(tmp_path), "--structure", str(tmp_path / "cu.xyz")], "no model.eqx"),
    ]
    for args, message in cases:
        capsys.readouterr()
        assert main(["forces", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err


def _metadata(path):
    # A checkpoint's second line is JSON (the first: the format and a checksum).
    return json.loads(path.read_bytes().split(b"\n", 2)[1])["metadata"]


def test_saved_model_metadata_is_json(trained_dir):
    meta = _metadata(trained_dir / "model.eqx")
    assert meta["model"] == "painn" and meta["hyperparameters"]["elements"] == [1, 6, 8]
    assert meta["model_format"] == 2


def test_a_model_saved_in_the_old_layout_is_refused(trained_dir, tmp_path):
    """Before format 2 the layers stored square weights (in, out): they would load
    transposed without a word, so a file without the version is refused by name."""
    model = pot.load_model(trained_dir)
    meta = _metadata(trained_dir / "model.eqx")
    del meta["model_format"]
    diffsim.save_checkpoint(tmp_path / "old.eqx", model, meta)
    with pytest.raises(ValueError, match="model format 1"):
        pot.load_model(tmp_path / "old.eqx")


@pytest.mark.slow  # ~3 min: two trainings of 1500 steps
@pytest.mark.parametrize("name", ["schnet", "painn"])
def test_a_known_pair_potential_is_learned_almost_exactly(name):
    """LJ13 labelled by ASE's LennardJones: force error within 5% of the mean |F|."""
    data = pot.generate_lj_clusters(150, seed=3)
    train, val, test = data.split(100, 20, 30, seed=0)
    model = pot.make_model(
        name, data.elements, cutoff=10.5, features=32, layers=2, key=jax.random.key(0)
    )
    res = pot.train_potential(
        model,
        train,
        val,
        steps=1500,
        batch_size=16,
        lr=5e-3,
        eval_every=100,
        key=jax.random.key(1),
        progress=False,
    )
    scores = pot.evaluate(res.model, test)
    mean_abs_force = 1000 * float(np.mean(np.abs(test.forces)))
    assert scores["force_mae"] < 0.05 * mean_abs_force, (scores, mean_abs_force)
