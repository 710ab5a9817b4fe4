"""Small versions of the minimisation, EMT and NPT experiments, asserting their claims."""

import pytest
from _helpers import small

from diffsim.runner import load_config, run_experiment


def test_md_parity_configs_validate():
    for name in ("md_minimise_clusters", "md_emt_copper", "md_npt_lj"):
        exp, _ = load_config(f"configs/{name}.toml")
        assert exp.name == name


@pytest.mark.slow  # L-BFGS compiles slowly; ~30 s at load 2
def test_minimise_clusters_small(tmp_path):
    exp, cfg = small("md_minimise_clusters", starts=1)
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["all_converged"]
    for key in ("lj13_fire", "lj13_lbfgs", "lj38_fire", "lj38_lbfgs"):
        assert m[f"{key}_max_abs_error"] < 5e-7  # the published values' rounding
    assert (run_dir / "convergence.png").stat().st_size > 5_000


@pytest.mark.slow  # ASE's EMT MD is the slow part
def test_emt_copper_small(tmp_path):
    exp, cfg = small("md_emt_copper", md_steps=20, grad_steps=5)
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    for k in ("energy", "forces", "stress"):
        assert m[f"max_{k}_difference"] < 1e-10
    assert m["md_max_potential_difference_eV"] < 1e-9
    assert m["md_final_position_difference_A"] < 1e-10
    assert m["grad_relative_error"] < 1e-5
    assert m["speedup_vs_ase"] > 5  # measured 66x at full scale (load 15)
    assert (run_dir / "md_energy.png").stat().st_size > 5_000


@pytest.mark.slow  # a statistical run: ~1.5 min at load 2
def test_npt_lj_matches_equation_of_state(tmp_path):
    exp, cfg = small("md_npt_lj", densities=(0.7,), equilibrate_steps=1000, production_steps=6000)
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    # Measured at full scale (12,000 steps, 3 densities): |z| <= 1.3, |rel| <= 0.5%.
    assert abs(m["rho0.7_density_z"]) < 4 and abs(m["rho0.7_density_rel_error"]) < 0.015
    assert abs(m["rho0.7_pressure_z"]) < 4
    assert abs(m["rho0.7_kappa_rel_error"]) < 0.4
    assert (run_dir / "eos.png").stat().st_size > 5_000
