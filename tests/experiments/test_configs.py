"""Every shipped config validates as shipped, without running it."""

from pathlib import Path

import pytest

from diffsim.runner import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))
# Configs that take the output of a documented earlier step: without it they must say so.
NEEDS_EARLIER_STEP = {"potential_md": "potential_train"}


def test_there_are_configs():
    assert len(CONFIGS) >= 20


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_validates_as_shipped(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    try:
        exp, cfg = load_config(path)
    except ConfigError as e:
        earlier = NEEDS_EARLIER_STEP.get(path.stem)
        assert earlier is not None, str(e)
        assert earlier in str(e) and "\n" not in str(e)
        return
    assert exp.name and cfg is not None
