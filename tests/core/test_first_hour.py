"""What a newcomer meets first: progress bars, the compilation cache and its announcements,
`diffsim list` with config files and run times, `report.html` and `diffsim report`,
the data-set cache folder."""

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import diffsim
from diffsim._progress import QUIET_INTERVAL_S, progress_bar
from diffsim.cli import main
from diffsim.runner._catalog import config_files, run_time
from diffsim.runner._compile import _COMPILE_EVENT, CompileWatch, compile_cache_dir

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def test_progress_bar_is_sparse_off_a_terminal_and_can_be_switched_off(monkeypatch):
    buf = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", buf)
    with progress_bar(10, desc="work") as bar:
        assert bar.mininterval == QUIET_INTERVAL_S and not bar.disable
        bar.update(10)
    assert "work" in buf.getvalue() and "10/10" in buf.getvalue()
    monkeypatch.setenv("DIFFSIM_PROGRESS", "0")
    with progress_bar(10, desc="quiet") as bar:
        assert bar.disable


def test_fit_shows_its_bar_on_stderr(capsys):
    loss = lambda p, batch, key: jnp.sum((p - 1.0) ** 2)  # noqa: E731
    diffsim.fit(loss, jnp.zeros(3), optax.sgd(0.1), steps=5, key=jax.random.key(0))
    err = capsys.readouterr().err
    assert "train" in err and "5/5" in err


def test_compile_cache_folder_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("DIFFSIM_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache_dir() == tmp_path / "diffsim" / "jax"
    monkeypatch.setenv("DIFFSIM_COMPILE_CACHE", str(tmp_path / "c"))
    assert compile_cache_dir() == tmp_path / "c"
    assert compile_cache_dir(tmp_path / "d") == tmp_path / "d"  # the option wins
    assert compile_cache_dir("off") is None
    monkeypatch.setenv("DIFFSIM_COMPILE_CACHE", "off")
    assert compile_cache_dir() is None


def test_long_compilations_are_announced_once():
    lines = []
    with CompileWatch(lines.append, after=0.1, every=0.02) as watch:
        # A long compilation as JAX reports it: a start (scalar), later a duration.
        for _ in range(2):
            watch._on_scalar(_COMPILE_EVENT, time.time() - 1.0, fun_name="jit(slow)")
            time.sleep(0.2)
            watch._on_duration(_COMPILE_EVENT, 1.2, fun_name="jit(slow)")
        jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)(jnp.arange(7.0))  # a real, quick one
    slow = [line for line in lines if "jit(slow)" in line]
    assert slow[0].startswith("compiling jit(slow) ...") and "not a hang" in slow[0]
    assert slow[1] == "compiled jit(slow) in 1.2 s"
    assert len(slow) == 2  # announced once per function
    assert watch.total_s > 2.4 and len(watch.durations) >= 3


def test_data_cache_folder_is_one_documented_place(monkeypatch, tmp_path):
    import diffsim.potentials as pot

    monkeypatch.delenv("DIFFSIM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pot.default_cache_dir() == tmp_path / "xdg" / "diffsim" / "data"
    monkeypatch.setenv("DIFFSIM_DATA", str(tmp_path / "d"))
    path = pot.cache_path("lj_cluster", 5)
    assert path == tmp_path / "d" / "lj_cluster_lj_5_seed0.extxyz"
    assert pot.cache_path("lj_cluster", 5, cache_dir=tmp_path / "e").parent == tmp_path / "e"


def test_list_shows_config_files_and_run_times(capsys, monkeypatch):
    import diffsim.runner

    found = config_files()
    assert [p.name for p in found["potential_train"]] == [
        "potential_train.toml",
        "potential_train_copper.toml",
        "potential_train_lj.toml",
    ]
    assert "ca_neural_growth_large.toml" in [p.name for p in found["ca_neural_growth"]]
    for paths in found.values():
        for p in paths:
            assert run_time(p), f"no typical run time for {p}"
    monkeypatch.setattr(diffsim.runner, "list_experiments", lambda: ["ode_stability"])
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "configs/ode_stability.toml  (6 s on 2 CPU cores)" in out


def _cli(*args, cwd, env=None):
    env = dict(os.environ, PYTHONPATH=str(HERE), MPLBACKEND="Agg", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "diffsim.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two CLI runs of the toy experiment (one with a figure), with a compilation cache."""
    tmp = tmp_path_factory.mktemp("first_hour")
    cfg = tmp / "toy.toml"
    cfg.write_text('experiment = "toy_experiment:run"\nsteps = 20\n')
    cache = tmp / "jax-cache"
    r = _cli(
        "run",
        str(cfg),
        "--out",
        str(tmp / "a"),
        "--compile-cache",
        str(cache),
        "--quiet",
        "--set",
        "width=8",
        cwd=tmp,
    )
    assert r.returncode == 0, r.stderr
    assert cache.is_dir()
    log = (tmp / "a" / "log.txt").read_text()
    assert "XLA compilation: " in log and f"(compilation cache: {cache})" in log
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp / "a" / "curve.png")
    plt.close(fig)
    from diffsim.runner._report import write_report

    write_report([tmp / "a"], tmp / "a" / "report.html")  # again, with the figure
    shutil.copytree(tmp / "a", tmp / "b")
    (tmp / "b" / "metrics.json").write_text(json.dumps({"final_loss": 0.5, "extra": 3}))
    return tmp


def test_each_run_writes_a_report_and_runs_go_side_by_side(two_runs, capsys):
    tmp = two_runs
    page = (tmp / "a" / "report.html").read_text()
    assert "toy_experiment:run" in page and "final_loss" in page and "width = 8" in page
    assert page.count("data:image/png;base64,") == 1 and "XLA compilation" in page
    out = tmp / "both.html"
    assert main(["report", str(tmp / "a"), str(tmp / "b"), "--out", str(out)]) == 0
    both = out.read_text()
    assert both.count("<section") == 2 and ">extra<" in both
    assert main(["report", str(tmp / "a"), "--out", str(out)]) == 2  # never overwrites
    assert "pass --force" in capsys.readouterr().err
    assert main(["report", str(tmp), "--out", str(tmp / "x.html")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(
    _browser() is None,
    reason="no headless Chromium installed (apt-get "
    "install chromium); the report page is checked in a browser where there is",
)
def test_report_page_loads_every_image_in_a_headless_browser(two_runs):
    page = two_runs / "both-browser.html"
    assert main(["report", str(two_runs / "a"), str(two_runs / "b"), "--out", str(page)]) == 0
    r = subprocess.run(
        [
            _browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'data-images="2/2"' in r.stdout


def test_figure_problems_are_found_before_saving(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from diffsim.runner import Run
    from diffsim.runner._figures import FigureError, figure_problems

    fig, (a, b) = plt.subplots(2, 1, sharex=True)
    a.plot([0, 1], [0, 1], label="line")
    a.set_ylabel("y (m)")
    b.plot([0, 1], [1, 0])
    b.set(xlabel="t (s)", ylabel="v (m/s)")
    assert figure_problems(fig) == []  # the shared x axis is labelled once
    im = b.imshow([[0, 1], [1, 0]])
    fig.colorbar(im, ax=b)
    a.legend(loc="center")
    a.plot(np.linspace(0, 1, 50), np.full(50, 0.5))
    problems = figure_problems(fig)
    assert any("colour bar without a label" in p for p in problems)
    assert any("legend covers" in p for p in problems)
    bare, ax = plt.subplots()
    ax.plot([1, 2])
    assert figure_problems(bare) == ["axes 0: no x label", "axes 0: no y label"]
    run = Run(tmp_path)
    run.quiet = True
    run.save_figure(bare, "bare.png")  # logged, saved
    assert "figure bare.png: axes 0: no x label" in (tmp_path / "log.txt").read_text()
    monkeypatch.setenv("DIFFSIM_CHECK_FIGURES", "1")
    with pytest.raises(FigureError, match="figure again.png: axes 0: no x label"):
        run.save_figure(_bare(plt), "again.png")
    plt.close("all")


def _bare(plt):
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    return fig


def test_results_print_short():
    from diffsim.control import ILQRResult

    res = ILQRResult(
        us=jnp.zeros((100, 1)),
        xs=jnp.zeros((101, 4)),
        cost=jnp.asarray(4.043),
        gains=jnp.zeros((100, 1, 4)),
        iterations=jnp.asarray(100),
        converged=jnp.asarray(False),
        history=jnp.zeros(101),
    )
    text = repr(res)
    assert text.startswith("ILQRResult(us=float") and "[100, 1]" in text
    assert "cost=4.043" in text and "iterations=100" in text and "converged=False" in text
    assert len(text) < 250
    assert ILQRResult.__doc__.startswith("What `ilqr` gives: the optimised controls")


def test_compile_announcement_says_how_long_it_took_last_time(tmp_path):
    history = tmp_path / "compile-times" / "exp.json"
    for run in range(2):
        lines = []
        with CompileWatch(lines.append, after=0.1, every=0.02, history=history) as watch:
            watch._on_scalar(_COMPILE_EVENT, time.time() - 1.0, fun_name="jit(slow)")
            time.sleep(0.2)
            watch._on_duration(_COMPILE_EVENT, 12.3 + run, fun_name="jit(slow)")
        first = lines[0]
        if run == 0:  # nothing recorded yet: no estimate
            assert "last time" not in first
        else:
            assert "about 12 s last time" in first, first
    assert json.loads(history.read_text()) == {"jit(slow)": 13.3}
    history.write_text("{not json")  # a damaged record is ignored, then rewritten
    assert CompileWatch(print, history=history).previous == {}
