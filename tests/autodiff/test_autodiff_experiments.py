"""Small versions of the autodiff experiments through the runner, asserting their claims;
the full configs (slow tier) assert the headline figures."""

import dataclasses
import json

import pytest

from diffsim.runner import find_experiment, load_config, run_experiment

NAMES = [
    "gradient_accumulation",
    "ad_modes_cost",
    "vanishing_exploding",
    "underflow",
    "activation_memory",
    "transposed_conv_symmetry",
]


def small(name, **changes):
    exp = find_experiment(name)
    return exp, dataclasses.replace(exp.config_cls(), **changes)


def full(name):
    return load_config(f"configs/{name}.toml")


def test_configs_validate():
    for name in NAMES:
        exp, cfg = load_config(f"configs/{name}.toml")
        assert exp.name == name


@pytest.mark.slow
def test_ad_modes_cost_op_counts(tmp_path):
    exp, cfg = small(
        "ad_modes_cost",
        sizes=[10, 300],
        repeats=1,
        cheap_repeats=1,
        cases=["mlp"],
        mlp_layers=4,
    )
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    # forward mode pays about n JVPs for a gradient, reverse mode about m VJPs for a tangent
    assert m["n_to_1.300.fwd_over_rev_ops"] > 100
    assert m["1_to_m.300.fwd_over_rev_ops"] < 1 / 30
    assert m["n_to_1.300.fwd_over_rev_ops"] > 20 * m["n_to_1.10.fwd_over_rev_ops"]
    assert 1.5 < m["cheap.mlp.op_ratio"] < 5
    for png in ["ad_modes_cost.png", "gradient_time_split.png"]:
        assert (run_dir / png).exists()


@pytest.mark.slow
def test_vanishing_exploding_small(tmp_path):
    exp, cfg = small(
        "vanishing_exploding",
        depth=20,
        width=32,
        batch=64,
        activations=["sigmoid", "relu"],
        inits=["standard"],
        train_depths=[2],
        train_steps=30,
    )
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["sigmoid.standard.shrink_per_layer"] >= 3.5
    assert 0.8 < m["relu.standard.shrink_per_layer"] < 1.25
    assert m["train.relu.2.final_loss"] < 2.0
    assert (run_dir / "layer_gradient_norms.png").exists()


@pytest.mark.slow
def test_underflow_small(tmp_path):
    exp, cfg = small("underflow", depth=16, width=16, batch=32, max_log2_scale=24)
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["float16.layers_all_zero"] >= 5
    assert m["bfloat16.layers_all_zero"] == 0 and m["float32.layers_all_zero"] == 0
    assert m["float16_scaled.layers_all_zero"] < m["float16.layers_all_zero"]
    assert m["float16_scaled.max_norm_rel_error_kept_layers"] < 0.05
    assert (run_dir / "underflow.png").exists()


@pytest.mark.slow
def test_activation_memory_small(tmp_path):
    exp, cfg = small(
        "activation_memory",
        mlp_width=64,
        mlp_batch=16,
        depths=[2, 6],
        lengths=[10, 100],
        checkpoint_length=64,
        segments=[8],
        repeats=1,
    )
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    # one stored activation (batch x width float32) per extra layer
    assert 0.9 < m["mlp.training_per_layer_over_activation"] < 2.1
    assert m["gru.100.inference_kb"] == m["gru.10.inference_kb"]
    assert m["gru.100.training_kb"] > 5 * m["gru.10.training_kb"]
    assert m["checkpoint.segments=8.memory_kb"] < 0.75 * m["checkpoint.BPTT.memory_kb"]
    assert m["checkpoint.segments=8.rel_diff_vs_bptt"] < 1e-5
    assert (run_dir / "activation_memory.png").exists()


# --- full configs: the headline figures ------------------------------------------------


@pytest.mark.slow
def test_full_gradient_accumulation(tmp_path):
    exp, cfg = full("gradient_accumulation")
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["max_abs_diff_init"] == 0.0 and m["max_abs_diff_trained"] == 0.0
    assert m["tape_vs_jax_rel"] <= 1e-13  # README's recorded measurement: 2.3e-15
    assert m["encoder_role_norm"] > 0 and m["decoder_role_norm"] > 0
    assert m["final_loss"] < 0.3 * m["initial_loss"]
    assert (run_dir / "tied_gradients.png").exists()


@pytest.mark.slow
def test_full_ad_modes_cost(tmp_path):
    exp, cfg = full("ad_modes_cost")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    # README's recorded measurements (XLA's op counts, deterministic for a jax version):
    # fwd/rev 0.52 n (5160 at 1e4); gradient/value MLP 2.95, GRU 2.89, ODE 12.7, MD 8.5
    n_max = max(cfg.sizes)
    assert m[f"n_to_1.{n_max}.fwd_over_rev_ops"] == pytest.approx(0.52 * n_max, rel=0.15)
    assert m["cheap.mlp.op_ratio"] == pytest.approx(2.95, rel=0.15)
    assert m["cheap.gru.op_ratio"] == pytest.approx(2.89, rel=0.15)
    assert m["cheap.ode.op_ratio"] == pytest.approx(12.7, rel=0.15)
    assert m["cheap.md.op_ratio"] == pytest.approx(8.5, rel=0.15)
    for n in cfg.sizes:
        assert m[f"n_to_1.{n}.fwd_over_rev_ops"] > 0.4 * n
        assert m[f"1_to_m.{n}.fwd_over_rev_ops"] < 2.0 / n
    assert m["cheap.mlp.op_ratio"] < 5 and m["cheap.gru.op_ratio"] < 5
    assert m["cheap.ode.op_ratio"] > 5 and m["cheap.md.op_ratio"] > 5  # XLA's count, see doc
    json.dumps(m)  # every figure is reportable


@pytest.mark.slow
def test_full_vanishing_exploding(tmp_path):
    exp, cfg = full("vanishing_exploding")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["sigmoid.standard.shrink_per_layer"] == pytest.approx(4.28, abs=0.15)  # README
    assert 0.9 < m["relu.standard.shrink_per_layer"] < 1.1
    assert 0.9 < m["tanh.standard.shrink_per_layer"] < 1.1
    assert m["sigmoid.standard.first_over_last"] < 1e-25
    assert m["tanh.poor.first_over_last"] > 1e14  # explodes going back; README: 3e15
    assert m["train.tanh.10.test_accuracy"] > 0.8 and m["train.relu.5.test_accuracy"] > 0.8
    assert m["train.sigmoid.50.test_accuracy"] < 0.2 and m["train.tanh.50.test_accuracy"] < 0.2


@pytest.mark.slow
def test_full_underflow(tmp_path):
    exp, cfg = full("underflow")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert 40 <= m["float16.layers_all_zero"] <= 44  # README: 42 of 50
    assert m["float16_scaled.layers_all_zero"] <= 37  # README: 35 at loss scale 2^15
    assert m["bfloat16.layers_all_zero"] == 0 and m["float32.layers_all_zero"] == 0
    assert m["layers_restored_by_scaling"] >= 5
    assert m["float16_scaled.max_norm_rel_error_kept_layers"] < 0.05


@pytest.mark.slow
def test_full_activation_memory(tmp_path):
    exp, cfg = full("activation_memory")
    m, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["mlp.training_per_layer_over_activation"] == pytest.approx(1.0, abs=0.02)
    assert m["mlp.64.inference_kb"] < 0.1 * m["mlp.64.training_kb"]
    assert m["gru.3000.inference_kb"] == m["gru.10.inference_kb"]
    assert m["gru.3000.training_kb"] > 200 * m["gru.10.training_kb"]
    assert m["checkpoint.bptt_over_best_memory"] == pytest.approx(34.7, rel=0.1)  # README


@pytest.mark.slow
def test_full_transposed_conv_symmetry(tmp_path):
    exp, cfg = full("transposed_conv_symmetry")
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert m["test_mse_network"] < m["test_mse_bilinear"]
    assert (run_dir / "upsampling.png").exists()
    assert m["adjoint_identity_max_rel_gap"] <= 1e-12 and m["max_abs_diff_vs_lax"] <= 1e-12
    assert m["mse_ratio_network_over_bilinear"] < 0.4
    # README's recorded measurement: 0.0156 vs bilinear 0.0518; identity gap 7.3e-15
    assert m["test_mse_network"] == pytest.approx(0.0156, abs=0.003)
    assert m["adjoint_identity_max_rel_gap"] <= 1e-13
