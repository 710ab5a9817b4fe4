"""Every domain's notebook runs top to bottom, writes into the folder it names, and shows
what it says. The cheapest runs in the default tier, the others in the slow tier."""

import runpy
from pathlib import Path

import numpy as np
import pytest

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"


def run_notebook(name, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFSIM_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # nothing may land in the current folder but OUT
    ns = runpy.run_path(str(NOTEBOOKS / f"{name}.py"), run_name="__main__")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    return ns, tmp_path / name


def test_every_notebook_is_a_jupytext_percent_script_without_a_forced_backend():
    names = sorted(p.stem for p in NOTEBOOKS.glob("*.py"))
    assert {"quickstart", "control", "automata", "molecular", "potentials"} <= set(names)
    for name in names:
        text = (NOTEBOOKS / f"{name}.py").read_text()
        assert "format_name: percent" in text and "# %%" in text, name
        assert 'matplotlib.use("Agg")' not in text or '"ipykernel" not in sys.modules' in text


@pytest.mark.slow  # like the other domain notebooks (default tier under 10 min)
def test_automata_notebook(tmp_path, monkeypatch):
    ns, out = run_notebook("automata", tmp_path, monkeypatch)
    assert ns["score"]["exact"] and ns["score"]["wrong"] == 0
    assert (out / "rule110.png").stat().st_size > 3_000


@pytest.mark.slow
def test_control_notebook(tmp_path, monkeypatch):
    ns, out = run_notebook("control", tmp_path, monkeypatch)
    assert abs(float(ns["res"].xs[-1, 0]) - np.pi) < 0.05
    assert float(ns["g"]) == pytest.approx(float(ns["fd"]), rel=1e-5)
    assert float(ns["adj"].grad_model.system.mass) == pytest.approx(float(ns["g"]), rel=1e-10)
    assert (out / "swingup.png").stat().st_size > 5_000


@pytest.mark.slow
def test_molecular_notebook(tmp_path, monkeypatch):
    ns, out = run_notebook("molecular", tmp_path, monkeypatch)
    assert 2.3 < ns["g"].max() < 3.2 and 3.5 < ns["rr"][np.argmax(ns["g"])] < 4.0
    assert float(ns["reversible"]) == pytest.approx(float(ns["bptt"]), rel=1e-9)
    assert float(ns["bptt"]) == pytest.approx(float(ns["fd"]), rel=1e-6)
    assert len(ns["atoms"]) == 108 and (out / "argon.extxyz").exists()


@pytest.mark.slow
def test_potentials_notebook(tmp_path, monkeypatch):
    ns, out = run_notebook("potentials", tmp_path, monkeypatch)
    assert ns["scores"]["force_mae"] < 5.0  # meV/A, on a mean |F| of about 11
    assert ns["drift"] < 1.0  # meV over 100 fs
    assert (out / "lj_cluster_lj_120_seed0.extxyz").exists()
