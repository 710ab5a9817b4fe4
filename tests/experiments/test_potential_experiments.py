"""Small versions of the learned-potential experiments, asserting their claims."""

import pytest
from _helpers import small

import diffsim.potentials as pot
from diffsim.runner import load_config, run_experiment


def test_potential_configs_validate():
    # potential_md takes the output of potential_train: tests/experiments/test_configs.py
    for name in ("potential_dataset", "potential_train"):
        exp, _ = load_config(f"configs/{name}.toml")
        assert exp.name == name


@pytest.fixture(scope="module")
def lj_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "lj.npz"
    pot.save_dataset(path, pot.generate_lj_clusters(50, equilibrate_steps=200, stride=5, seed=2))
    return path


@pytest.mark.slow  # ~1 min: four small trainings, then MD with the exported model
def test_potential_train_and_md_small(tmp_path, lj_file):
    exp, cfg = small(
        "potential_train",
        dataset=str(lj_file),
        train_sizes=[10, 30],
        n_val=10,
        n_test=10,
        cutoff=8.0,
        features=8,
        layers=1,
        n_rbf=6,
        steps=60,
        batch_size=8,
        lr=1e-2,
        eval_every=20,
    )
    m, run_dir = run_experiment(exp, cfg, tmp_path / "train", quiet=True)
    mean_abs_force = 1000 * float(abs(pot.load_dataset(lj_file).forces).mean())  # meV/A
    for name in ("painn", "schnet"):  # predicting zero forces would score mean_abs_force
        assert m[f"{name}_n30_force_mae"] < 0.5 * mean_abs_force
    assert (run_dir / "model.eqx").exists() and (run_dir / "learning_curve.png").exists()
    exp, cfg = small(
        "potential_md",
        model=str(run_dir),
        dataset=str(lj_file),
        dt_fs=5.0,
        temperature_K=30.0,
        equilibrate_steps=50,
        nve_steps=200,
        sample_steps=200,
        bond_cutoff=4.2,
    )
    m, run_dir = run_experiment(exp, cfg, tmp_path / "md", quiet=True)
    # measured at this scale (load ~22, 2026-11-30): drift 1.5e-4 of the mean kinetic energy;
    # 30 pair distributions within W1 = 0.03 ... 0.63 A of the reference (a model trained for
    # 60 steps on 30 frames: README's ethanol figures are not asserted at any scale)
    assert m["nve_drift_over_kinetic"] < 1e-3
    w1 = [v for k, v in m.items() if k.endswith("_wasserstein")]
    assert len(w1) > 0 and max(w1) < 1.3
