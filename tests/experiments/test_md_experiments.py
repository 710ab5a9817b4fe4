"""Small versions of the molecular experiments, asserting their claims."""

import pytest
from _helpers import small

from diffsim.runner import load_config, run_experiment


def test_md_configs_validate():
    for name in ("md_lj_fluid", "md_param_fit", "md_cu_emt_reference"):
        exp, _ = load_config(f"configs/{name}.toml")
        assert exp.name == name


@pytest.mark.slow  # default tier under 10 min: the full config is asserted in the slow tier
def test_lj_fluid_small(tmp_path):
    exp, cfg = small("md_lj_fluid", n=108, equilibrate_steps=300, nve_steps=300, rdf_frames=2)
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert 0.85 < m["nve_temperature"] < 1.15
    assert m["relative_energy_drift"] < 1e-3
    assert 1.0 < m["rdf_peak_r"] < 1.2 and m["rdf_peak_height"] > 2.0
    assert not m["neighbor_list"]  # 108 atoms: a box too small for a list; see the slow tier
    for name in ("energy.png", "temperature.png", "rdf.png"):
        assert (run_dir / name).stat().st_size > 5_000


@pytest.mark.slow  # the shipped config, N = 500 for 2000 + 5000 steps: ~2 min
def test_lj_fluid_full(tmp_path):
    exp, cfg = small("md_lj_fluid")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    # measured (load ~19, 2026-11-30): T 1.009, drift 9.3e-6, g(r) peak 2.574 at 1.06;
    # float32 with threaded reductions, so runs differ slightly (README had 1.017, 2.6e-6)
    assert m["neighbor_list"] and not m["cell_list"]  # N = 500: the all-pairs build
    assert m["nve_temperature"] == pytest.approx(1.0, abs=0.04)
    assert m["relative_energy_drift"] < 3e-5
    assert m["rdf_peak_r"] == pytest.approx(1.06, abs=0.03)
    assert m["rdf_peak_height"] == pytest.approx(2.58, abs=0.1)


@pytest.mark.slow  # N = 2048, the smallest FCC size where the cell list is the cheaper build
def test_lj_fluid_cell_list(tmp_path):
    exp, cfg = small("md_lj_fluid", n=2048, equilibrate_steps=200, nve_steps=500, rdf_frames=2)
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    # measured (load ~24, 2026-11-30): cell list, 61 rebuilds, drift 9.9e-7, NVE T 0.80
    # (200 Langevin steps from the lattice do not reach kT = 1; not the point here)
    assert m["cell_list"] and m["neighbor_rebuilds"] > 0
    assert m["relative_energy_drift"] < 1e-5
    assert 0.7 < m["nve_temperature"] < 1.1


@pytest.mark.slow  # the shipped config: 200 fits through 100-step reversible MD, ~2 min
def test_param_fit_full(tmp_path):
    exp, cfg = small("md_param_fit")
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    # measured (load ~22, 2026-11-30; float32 MD, so runs differ slightly: README had
    # 2.7e-6 / 8.2e-5): sigma 1.5e-5, epsilon 3.0e-4, loss 1.2e-3 -> 6.2e-10
    assert m["final_loss"] < 1e-4 * m["initial_loss"]
    assert m["sigma_rel_error"] < 1e-4
    assert m["epsilon_rel_error"] < 2e-3
    assert (run_dir / "fit.png").stat().st_size > 5_000


def test_cu_emt_reference_small(tmp_path):
    exp, cfg = small("md_cu_emt_reference", repeat=2, steps=40, record_every=10)
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["frames"] == 5 and m["atoms"] == 32
    assert m["max_fd_force_error"] < 1e-6
    assert m["round_trip_max_error_A"] < 1e-5
    assert (run_dir / "cu_emt.extxyz").stat().st_size > 1_000
