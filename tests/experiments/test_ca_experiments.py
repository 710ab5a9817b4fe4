"""Small versions of the cellular-automata experiments, asserting their claims."""

import json

import pytest
from _helpers import small

from diffsim.runner import load_config, run_experiment


def test_ca_configs_validate():
    for path, name in [
        ("configs/ca_elementary_inference.toml", "ca_elementary_inference"),
        ("configs/ca_life_inference.toml", "ca_life_inference"),
        ("configs/ca_neural_growth.toml", "ca_neural_growth"),
        ("configs/ca_neural_growth_large.toml", "ca_neural_growth"),
    ]:
        exp, cfg = load_config(path)
        assert exp.name == name
    with pytest.raises(ValueError, match="parse_rule"):
        small("ca_life_inference", rules=["B3/S2x"])


@pytest.mark.slow  # default tier under 10 min: the table and gradient tests stay there
def test_elementary_inference_recovers_every_rule_given(tmp_path):
    rules = [30, 90, 110, 184]
    exp, cfg = small("ca_elementary_inference", rules=rules, width=64, steps=100, log_every=5)
    metrics, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert metrics["recovered"] == len(rules) and metrics["fraction_recovered"] == 1.0
    assert 0 < metrics["median_steps_to_exact"] <= cfg.steps
    assert metrics["rules_with_unidentifiable_entries"] == 0
    for name in ("tables.png", "spacetime.png"):
        assert (run_dir / name).stat().st_size > 5_000
    assert (run_dir / "rules.md").read_text().count("| True |") == len(rules)


@pytest.mark.slow  # the shipped config, all 256 rules in one vmapped program: ~1 min
def test_elementary_inference_all_256_rules(tmp_path):
    exp, cfg = small("ca_elementary_inference")
    assert cfg.rules == list(range(256))
    metrics, _ = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    # measured (load ~19, 2026-11-30): 256/256, median 15 steps, max 80
    assert metrics["recovered"] == 256 and metrics["rules_with_unidentifiable_entries"] == 0
    assert metrics["median_steps_to_exact"] <= 20
    assert metrics["max_steps_to_exact"] <= 120


@pytest.mark.slow
def test_life_inference_small(tmp_path):
    exp, cfg = small(
        "ca_life_inference",
        rules=["B3/S23", "B36/S23"],
        size=32,
        frames=20,
        steps=600,
        gaps=[2],
        gap_steps=200,
    )
    metrics, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert metrics["clean_recovered"] == 2
    assert metrics["noise_recovered"] >= 1
    assert metrics["k2_final_loss"] < 0.6  # below chance (ln 2 = 0.69) through 2-step BPTT
    assert "B36/S23" in (run_dir / "recovery.md").read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["rules"] == 2


@pytest.mark.slow
def test_neural_growth_small(tmp_path):
    exp, cfg = small(
        "ca_neural_growth",
        size=12,
        pad=3,
        hidden=32,
        batch=4,
        pool=16,
        rollout_steps=24,
        train_steps=150,
        log_every=50,
    )
    metrics, run_dir = run_experiment(exp, cfg, tmp_path / "run", quiet=True)
    assert metrics["growth_loss_at_T"] < 0.5 * metrics["seed_loss"]
    assert metrics["regrowth_loss"] < metrics["damaged_loss"]
    for name in ("loss.png", "filmstrip.png", "nca.eqx"):
        assert (run_dir / name).exists()
