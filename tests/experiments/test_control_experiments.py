"""Small versions of the control experiments, asserting their claims."""

import pytest
from _helpers import small

from diffsim.runner import load_config, run_experiment

NAMES = [
    "cartpole_swingup",
    "arm_reach_obstacle",
    "car_parking",
    "quadrotor_waypoints",
    "mpc_disturbance",
    "sysid_cartpole",
    "gradient_horizon",
]


def test_configs_validate():
    for name in NAMES:
        exp, cfg = load_config(f"configs/{name}.toml")
        assert exp.name == name and cfg == exp.config_cls()  # the TOML is the default config


# The full configs below assert README's headline figures; each run is deterministic
# (float64, fixed seeds), so the margins are a small factor over the recorded measurement.
# Measured with `diffsim run configs/NAME.toml` on 2 shared cores, load ~18, 2026-11-30.


@pytest.mark.slow  # the shipped config (the `make demo` flagship): ~40 s
def test_cartpole_swingup_full(tmp_path):
    exp, cfg = small("cartpole_swingup", gif=False)
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["final_angle_error_rad"] < 0.03  # measured 0.0191
    assert m["final_cart_position_m"] < 0.002  # measured 0.00053
    assert m["cost_shooting"] == pytest.approx(7.23, abs=0.05)  # measured 7.2349
    assert m["cost_final"] == pytest.approx(4.04, abs=0.02)  # measured 4.0432
    for f in ("trajectory.png", "cost.png", "filmstrip.png"):
        assert (run_dir / f).stat().st_size > 10_000


@pytest.mark.slow  # ~20 s of compilation on 2 cores
def test_arm_reach(tmp_path):
    exp, cfg = small("arm_reach_obstacle")
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["tip_error_m"] < 3e-4  # measured 1.52e-4
    assert m["min_clearance_m"] == pytest.approx(0.27, abs=0.01)  # measured 0.2657
    assert (run_dir / "filmstrip.png").exists()


@pytest.mark.slow
def test_car_parking(tmp_path):
    exp, cfg = small("car_parking")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["success"]
    assert m["position_error_m"] < 2.5e-3  # measured 1.26e-3
    assert m["heading_error_rad"] < 0.03  # measured 0.0212


@pytest.mark.slow
def test_quadrotor_waypoints(tmp_path):
    exp, cfg = small("quadrotor_waypoints")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["max_waypoint_miss_m"] < 1.5e-3  # measured 6.35e-4


@pytest.mark.slow  # the shipped config: ~35 s (moved from the default tier, see below)
def test_mpc_disturbance_full(tmp_path):
    # The small version (60 steps) left the default tier for the cheaper 15-step pendulum
    # iLQR swing-up (tests/control/test_control_optimal.py); it cost 2.6 times as much.
    exp, cfg = small("mpc_disturbance")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["rms_tracking_error_m"] < 0.11  # measured 0.0974
    assert m["max_abs_angle_rad"] < 0.17  # measured 0.1433
    assert m["open_loop_max_abs_angle_rad"] > 3.0  # measured 6.23: the open loop falls over
    # Timing is not asserted (README: measured 4.6 ms at low load; 12.5 ms at load 18).
    assert 0 < m["step_time_median_ms"] <= m["step_time_p95_ms"]


@pytest.mark.slow  # the shipped config: ~75 s
def test_sysid_cartpole_full(tmp_path):
    exp, cfg = small("sysid_cartpole")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["max_rel_error"] < 0.008  # measured 0.00529 (cart friction)
    assert m["final_loss"] < 1e-5  # measured 3.2e-6


@pytest.mark.slow  # the shipped config: one compilation per horizon and system, ~75 s
def test_gradient_horizon_full(tmp_path):
    exp, cfg = small("gradient_horizon")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    # measured (load ~20, 2026-11-30), 0.5 s -> 16 s: double pendulum BPTT 9.82 -> 2.87e9
    # (x2.9e8), truncated 9.82 -> 8.28 (x0.84), checkpointed = BPTT to 4.7e-14; README: 45 KB
    # checkpointed vs 862 KB BPTT
    assert m["double_pendulum_bptt_growth"] > 1e8  # chaotic: explodes
    assert m["double_pendulum_bptt_growth"] > 1e6 * m["pendulum_bptt_growth"]
    assert m["double_pendulum_truncated_growth"] < 2
    assert m["double_pendulum_ilqr_feedback_growth"] < 10
    assert m["double_pendulum_checkpointed_rel_diff"] < 1e-12
    assert m["memory_checkpointed_bytes"] < 0.1 * m["memory_bptt_bytes"]
