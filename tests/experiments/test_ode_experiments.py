"""Small versions of the foundation's experiments, asserting their claims."""

import json

import pytest
from _helpers import small

from diffsim.runner import load_config, run_experiment


def test_configs_validate():
    for name in ["ode_stability", "adjoint_vs_bptt"]:
        exp, cfg = load_config(f"configs/{name}.toml")
        assert exp.name == name


def test_ode_stability_gradients_explode_exactly_outside_region(tmp_path):
    exp, cfg = small(
        "ode_stability", hidden=4, steps=40, n_dt=10, n_angles=7, solvers=["euler", "heun"]
    )
    metrics, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    for s in cfg.solvers:
        assert metrics[f"{s}_points_outside"] > 0 and metrics[f"{s}_points_inside"] > 0
        assert metrics[f"{s}_fraction_exploding_outside"] == 1.0
        assert metrics[f"{s}_fraction_bounded_inside"] == 1.0
        # measured growth per step equals log |R(dt lambda)| at the fixed point
        assert metrics[f"{s}_max_rate_error_outside"] < 1e-8
    assert (run_dir / "stability_gradients.png").stat().st_size > 10_000
    assert json.loads((run_dir / "metrics.json").read_text())["euler_points_outside"] > 0


@pytest.mark.slow  # default tier under 10 min: every mode's gradient is checked in tests/ode
def test_adjoint_vs_bptt_modes_agree_and_fit(tmp_path):
    exp, cfg = small(
        "adjoint_vs_bptt",
        problems=["oscillator"],
        n_obs=21,
        dt=0.1,
        train_steps=40,
        lr=0.05,
        dt_sweep=[0.2, 0.1, 0.05],
    )
    metrics, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert metrics["max_rel_diff_exact_modes"] <= 1e-10
    errors = metrics["oscillator.continuous_adjoint.errors"]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert metrics["oscillator.continuous_adjoint.order"] == pytest.approx(4.0, abs=0.6)
    for mode in cfg.modes:
        assert metrics[f"oscillator.{mode}.final_loss"] < 0.5 * metrics["oscillator.initial_loss"]
    assert metrics["oscillator.checkpointed.memory_kb"] < metrics["oscillator.bptt.memory_kb"]
    for png in ["fits.png", "modes.png"]:
        assert (run_dir / png).exists()
    assert (run_dir / "train" / "oscillator-bptt" / "metrics.jsonl").exists()


@pytest.mark.slow  # the shipped config, three problems x four modes: ~85 s
def test_adjoint_vs_bptt_full(tmp_path):
    exp, cfg = load_config("configs/adjoint_vs_bptt.toml")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    # measured (`diffsim run configs/adjoint_vs_bptt.toml`, load ~19, 2026-11-30)
    assert m["max_rel_diff_exact_modes"] < 1e-15  # measured 1.88e-16
    orders = {"oscillator": 4.05, "lotka_volterra": 3.98, "neural_ode": 4.13}
    for name, measured in orders.items():  # RK4: order 4
        errors = m[f"{name}.continuous_adjoint.errors"]
        assert all(a > b for a, b in zip(errors, errors[1:]))
        assert m[f"{name}.continuous_adjoint.order"] == pytest.approx(measured, abs=0.1)
    # neural ODE gradient memory (XLA's memory analysis), measured 876.1 / 34.6 / 19.0 / 7.1 KB
    kb = {mode: m[f"neural_ode.{mode}.memory_kb"] for mode in cfg.modes}
    assert kb["bptt"] == pytest.approx(876, rel=0.1)
    assert kb["checkpointed"] == pytest.approx(35, rel=0.1)
    assert kb["discrete_adjoint"] == pytest.approx(19, rel=0.1)
    assert kb["continuous_adjoint"] == pytest.approx(7, rel=0.15)


@pytest.mark.slow  # the shipped config: 6 s at low load
def test_ode_stability_full(tmp_path):
    exp, cfg = load_config("configs/ode_stability.toml")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    # measured (load ~18, 2026-11-30): Euler 276 / RK4 90 points outside, 100% exploding;
    # 100% bounded inside; growth rate = log|R| to 5.6e-16 / 1.6e-15
    assert (m["euler_points_outside"], m["rk4_points_outside"]) == (276, 90)
    for s in ("euler", "rk4"):
        assert m[f"{s}_fraction_exploding_outside"] == 1.0
        assert m[f"{s}_fraction_bounded_inside"] == 1.0
        assert m[f"{s}_max_rate_error_outside"] < 1e-14
