"""The learned-potential experiments' configs. Their claims are asserted at a scale the slow
tier runs in `tests/potentials/test_learning_curves.py` (potential_train's learning curves
and crossover on ethanol, then potential_md with the exported model)."""

from diffsim.runner import load_config


def test_potential_configs_validate():
    # potential_md takes the output of potential_train: tests/experiments/test_configs.py
    for name in ("potential_dataset", "potential_train"):
        exp, _ = load_config(f"configs/{name}.toml")
        assert exp.name == name
