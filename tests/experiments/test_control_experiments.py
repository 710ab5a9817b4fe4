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


@pytest.mark.slow  # compilation-heavy; default tier budget
def test_cartpole_swingup_small(tmp_path):
    # A shorter optimisation than the default (which reaches 0.02 rad, 0.001 m).
    exp, cfg = small("cartpole_swingup", shooting_steps=100, ilqr_iterations=60, gif=False)
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["final_angle_error_rad"] < 0.05 and m["final_cart_position_m"] < 0.1
    assert m["cost_final"] <= m["cost_shooting"]
    for f in ("trajectory.png", "cost.png", "filmstrip.png"):
        assert (run_dir / f).stat().st_size > 10_000


@pytest.mark.slow  # ~20 s of compilation on 2 cores
def test_arm_reach(tmp_path):
    exp, cfg = small("arm_reach_obstacle")
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["tip_error_m"] < 0.05 and m["min_clearance_m"] > 0
    assert (run_dir / "filmstrip.png").exists()


@pytest.mark.slow
def test_car_parking(tmp_path):
    exp, cfg = small("car_parking")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["success"]


@pytest.mark.slow
def test_quadrotor_waypoints(tmp_path):
    exp, cfg = small("quadrotor_waypoints")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["max_waypoint_miss_m"] < 0.05


def test_mpc_disturbance_small(tmp_path):
    exp, cfg = small("mpc_disturbance", steps=60, horizon=15)
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["max_abs_angle_rad"] < 0.3 < m["open_loop_max_abs_angle_rad"]
    assert m["step_time_median_ms"] > 0


@pytest.mark.slow  # compilation-heavy; default tier budget
def test_sysid_cartpole_small(tmp_path):
    exp, cfg = small(
        "sysid_cartpole", trajectories=3, steps_per_trajectory=50, window=25, train_steps=40
    )
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["max_rel_error"] < 0.05


@pytest.mark.slow  # one compilation per horizon and system
def test_gradient_horizon_small(tmp_path):
    exp, cfg = small("gradient_horizon", horizons=[25, 400])
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["double_pendulum_bptt_growth"] > 100 * m["pendulum_bptt_growth"]
    assert m["double_pendulum_truncated_growth"] < 10
    assert m["double_pendulum_ilqr_feedback_growth"] < 10
    assert m["double_pendulum_checkpointed_rel_diff"] < 1e-10
    assert m["memory_checkpointed_bytes"] < m["memory_bptt_bytes"]
