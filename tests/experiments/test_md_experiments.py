"""Small versions of the molecular experiments, asserting their claims."""

import pytest
from _helpers import small

from diffsim.runner import load_config, run_experiment


def test_md_configs_validate():
    for name in ("md_lj_fluid", "md_param_fit", "md_cu_emt_reference"):
        exp, _ = load_config(f"configs/{name}.toml")
        assert exp.name == name


def test_lj_fluid_small(tmp_path):
    exp, cfg = small("md_lj_fluid", n=108, equilibrate_steps=300, nve_steps=300, rdf_frames=2)
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert 0.85 < m["nve_temperature"] < 1.15
    assert m["relative_energy_drift"] < 1e-3
    assert 1.0 < m["rdf_peak_r"] < 1.2 and m["rdf_peak_height"] > 2.0
    for name in ("energy.png", "temperature.png", "rdf.png"):
        assert (run_dir / name).stat().st_size > 5_000


@pytest.mark.slow  # ~20 s of compile + training even when small
def test_param_fit_small(tmp_path):
    exp, cfg = small(
        "md_param_fit", equilibrate_steps=100, trajectory_steps=30, fit_steps=25, log_every=5
    )
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["final_loss"] < 0.1 * m["initial_loss"]
    assert m["sigma_rel_error"] < 0.5 * (1 - cfg.init_sigma)
    assert (run_dir / "fit.png").stat().st_size > 5_000


def test_cu_emt_reference_small(tmp_path):
    exp, cfg = small("md_cu_emt_reference", repeat=2, steps=40, record_every=10)
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["frames"] == 5 and m["atoms"] == 32
    assert m["max_fd_force_error"] < 1e-6
    assert m["round_trip_max_error_A"] < 1e-5
    assert (run_dir / "cu_emt.extxyz").stat().st_size > 1_000


def test_potential_configs_validate():
    for name in ("potential_dataset", "potential_train", "potential_md"):
        exp, _ = load_config(f"configs/{name}.toml")
        assert exp.name == name


@pytest.fixture(scope="module")
def lj_file(tmp_path_factory):
    import diffsim.molecular as md

    path = tmp_path_factory.mktemp("data") / "lj.npz"
    md.save_dataset(path, md.generate_lj_clusters(50, equilibrate_steps=200, stride=5, seed=2))
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
    import diffsim.molecular as md

    mean_abs_force = 1000 * float(abs(md.load_dataset(lj_file).forces).mean())  # meV/A
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
    assert m["nve_drift_over_kinetic"] < 0.05
    assert any(k.endswith("_wasserstein") for k in m)
