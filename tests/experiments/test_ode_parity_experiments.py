"""Small versions of the stiff-kinetics and bouncing-ball experiments (full scale: slow)."""

import pytest
from _helpers import small

from diffsim.runner import load_config, run_experiment


def test_configs_validate():
    for name in ["ode_stiff_kinetics", "ode_events_bounce"]:
        exp, cfg = load_config(f"configs/{name}.toml")
        assert exp.name == name


@pytest.mark.slow  # default tier under 10 min: the events themselves are checked in tests/ode
def test_ode_events_bounce_small(tmp_path):
    exp, cfg = small("ode_events_bounce", bounces=3, solvers=["dopri5"])
    metrics, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    for s in ["dopri5"]:
        assert metrics[f"{s}_events"] == 3
        assert metrics[f"{s}_max_time_error"] < 1e-12
        assert metrics[f"{s}_max_grad_rel_error"] < 1e-10
    assert (run_dir / "bounces.png").stat().st_size > 10_000


@pytest.mark.slow
def test_ode_events_bounce_full(tmp_path):
    exp, cfg = load_config("configs/ode_events_bounce.toml")
    metrics, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    for s in ["dopri5", "kvaerno5"]:
        assert metrics[f"{s}_events"] == 10
        assert metrics[f"{s}_max_time_error"] < 1e-12
        assert metrics[f"{s}_max_grad_rel_error"] < 1e-10


@pytest.mark.slow
def test_ode_stiff_kinetics_full(tmp_path):
    exp, cfg = load_config("configs/ode_stiff_kinetics.toml")
    metrics, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert metrics["max_rel_error_vs_radau"] < 1e-6
    assert metrics["grad_rel_error_vs_fd"] < 1e-4
    assert metrics["step_size_max"] / metrics["step_size_min"] > 1e8
    assert metrics["accepted_steps"] < 600
    assert (run_dir / "robertson.png").stat().st_size > 10_000
