"""The quickstart notebook runs top to bottom (so it never rots) and shows what it says."""

import runpy
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "quickstart.py"


def test_quickstart_runs(tmp_path, monkeypatch, capsys):
    figure = tmp_path / "quickstart.png"
    monkeypatch.setenv("QUICKSTART_FIGURE", str(figure))
    namespace = runpy.run_path(str(NOTEBOOK), run_name="__main__")
    out = capsys.readouterr().out
    assert figure.stat().st_size > 5_000
    # The gradient it prints matches the finite difference it prints.
    assert float(namespace["fd"]) == pytest.approx(
        float(namespace["jax"].grad(namespace["final_energy"])(0.5, namespace["diffsim"].BPTT())),
        rel=1e-6,
    )
    ratio = float(
        namespace["final_energy"](namespace["d"], namespace["diffsim"].BPTT()) / namespace["E0"]
    )
    assert ratio == pytest.approx(0.1, rel=1e-8)
    assert "ContinuousAdjoint" in out
