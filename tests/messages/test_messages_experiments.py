"""Small versions of the message-passing experiments through the runner; full runs are slow."""

import dataclasses

import pytest

from diffsim.runner import find_experiment, load_config, run_experiment


def small(name, **changes):
    exp = find_experiment(name)
    return exp, dataclasses.replace(exp.config_cls(), **changes)


def test_configs_validate():
    for name in ["hmm_backprop_identity", "kalman_backprop_identity", "hmm_fit_real"]:
        exp, _ = load_config(f"configs/{name}.toml")
        assert exp.name == name


@pytest.mark.slow
def test_hmm_backprop_identity_small(tmp_path):
    exp, cfg = small(
        "hmm_backprop_identity",
        states=3,
        lengths=[5, 300],
        strategies=["bptt", "discrete_adjoint"],
        brute_force_length=4,
    )
    metrics, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    bf = metrics["brute_force"]
    assert bf["marginals_error_grad"] < 1e-12 and bf["pairwise_error_forward_backward"] < 1e-12
    assert bf["viterbi_grad_equal"] and bf["viterbi_backtrack_equal"]
    assert metrics["max_marginals_error"] < 1e-10 and metrics["max_pairwise_error"] < 1e-10
    assert metrics["max_parallel_error"] < 1e-10
    assert metrics["nans"] == 0 and metrics["viterbi_disagreements"] == 0
    assert metrics["transition_zeros"] > 0
    assert (run_dir / "identity_error.png").stat().st_size > 10_000


@pytest.mark.slow
def test_hmm_fit_real_nile(tmp_path):
    exp, cfg = small("hmm_fit_real", ga_steps=40, em_iterations=20)
    metrics, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert metrics["log_likelihood_gap"] < 1e-5
    assert metrics["max_param_diff"] < 1e-3
    assert metrics["viterbi_paths_equal"]
    assert metrics["change_years"] == [1899]  # the first low year after the 1898 drop
    assert metrics["regime_means"][0] == pytest.approx(851, abs=5)
    assert metrics["regime_means"][1] == pytest.approx(1097, abs=5)
    assert metrics["em_iterations"] is not None and metrics["ga_iterations"] is not None
    assert (run_dir / "regimes.png").exists()


@pytest.mark.slow
def test_hmm_backprop_identity_full(tmp_path):
    exp, cfg = load_config("configs/hmm_backprop_identity.toml")
    metrics, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert max(r["T"] for r in metrics["rows"]) == 100_000
    # README's recorded measurement: 8.5e-14 at T = 1e5, brute force 2.1e-15
    assert metrics["max_marginals_error"] < 1e-12
    assert metrics["max_pairwise_error"] < 1e-10
    assert metrics["max_parallel_error"] < 1e-9
    assert metrics["nans"] == 0 and metrics["viterbi_disagreements"] == 0
    assert metrics["brute_force"]["marginals_error_grad"] < 1e-13


@pytest.mark.slow
def test_kalman_backprop_identity_full(tmp_path):
    exp, cfg = load_config("configs/kalman_backprop_identity.toml")
    metrics, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    # README's recorded measurement: 5.3e-15 to T = 1e4, dense conditioning 1.1e-15
    assert metrics["max_means_error"] < 1e-13
    assert metrics["max_observation_identity_error"] < 1e-12
    assert metrics["max_parallel_means_error"] < 1e-12
    assert metrics["dense"]["grad_means_error"] < 1e-14
    assert (run_dir / "identity_error.png").stat().st_size > 10_000


@pytest.mark.slow
def test_hmm_fit_real_full(tmp_path):
    exp, cfg = load_config("configs/hmm_fit_real.toml")
    metrics, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert metrics["log_likelihood_gap"] < 1e-8
    assert metrics["em_log_likelihood"] == pytest.approx(-630.4976, abs=1e-3)
    assert metrics["change_years"] == [1899]
    # README's recorded measurement: EM 11, L-BFGS 35 iterations; regimes 851 / 1097
    assert metrics["em_iterations"] <= 20 and metrics["ga_iterations"] <= 60
    assert metrics["regime_means"][0] == pytest.approx(851, abs=5)
    assert metrics["regime_means"][1] == pytest.approx(1097, abs=5)
