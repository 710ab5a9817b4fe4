"""The experiment registry: the library never imports the application; the project's and a
user's packages register experiments the same way (entry points), and so does a wheel."""

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from diffsim.runner import ConfigError, find_experiment, list_experiments

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _cli(*args, cwd, env_path=None, timeout=300):
    env = dict(os.environ, MPLBACKEND="Agg")
    if env_path is not None:
        env["PYTHONPATH"] = str(env_path)
    return subprocess.run(
        [sys.executable, "-m", "diffsim.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_library_never_imports_the_application():
    offenders = []
    for path in (ROOT / "diffsim").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in ("experiments", "diffsim_experiments")
            ]
    assert not offenders


def test_experiments_import_each_other_relatively():
    """`experiments/` installs as `diffsim_experiments`: `import experiments...` would break."""
    offenders = []
    for path in (ROOT / "experiments").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                if (node.module or "").split(".")[0] == "experiments":
                    offenders.append(path.name)
            elif isinstance(node, ast.Import):
                offenders += [
                    path.name for a in node.names if a.name.split(".")[0] == "experiments"
                ]
    assert not offenders


def test_every_experiment_module_is_registered_and_every_package_listed():
    modules = sorted(
        p.stem for p in (ROOT / "experiments").glob("*.py") if not p.name.startswith("_")
    )
    entry_points = PYPROJECT["project"]["entry-points"]["diffsim.experiments"]
    assert sorted(entry_points) == modules
    assert all(v == f"diffsim_experiments.{k}" for k, v in entry_points.items())
    assert list_experiments() == modules  # the installed metadata matches pyproject.toml
    packages = sorted(
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "diffsim").rglob("__init__.py")
    )
    listed = PYPROJECT["tool"]["setuptools"]["packages"]
    assert sorted(p for p in listed if p.startswith("diffsim.") or p == "diffsim") == packages
    assert "diffsim_experiments" in listed and "experiments" not in listed


@pytest.mark.parametrize(
    "name, expected",
    [
        (":", "not of the form"),
        (".rel:run", "not of the form"),
        ("a:b:c", "not of the form"),
        ("no_such_module_xyz:run", "cannot import"),
        ("ode_stabilty", "did you mean 'ode_stability'"),
        ("", "must name an experiment"),
    ],
)
def test_bad_experiment_names(name, expected):
    with pytest.raises(ConfigError, match=expected):
        find_experiment(name)


def test_user_module_with_syntax_error_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "broken_exp.py").write_text("def run(cfg, run)\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="syntax error"):
        find_experiment("broken_exp:run")


USER_MODULE = '''"""A user's experiment from another package."""
import dataclasses

@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    scale: float = 2.0

def run(cfg, run):
    run.log("hello from a user package")
    return {"answer": 21 * cfg.scale}
'''


def _user_package(site: Path) -> None:
    """An installed package (a module plus its dist-info) declaring one experiment."""
    (site / "user_pkg").mkdir(parents=True)
    (site / "user_pkg" / "__init__.py").write_text("")
    (site / "user_pkg" / "my_exp.py").write_text(USER_MODULE)
    info = site / "user_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: user-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[diffsim.experiments]\nuser_answer = user_pkg.my_exp\n")


def test_a_user_package_adds_an_experiment(tmp_path):
    site = tmp_path / "site"
    _user_package(site)
    listed = _cli("list", cwd=tmp_path, env_path=site)
    assert listed.returncode == 0, listed.stderr
    assert "user_answer" in listed.stdout and "A user's experiment" in listed.stdout
    assert "ode_stability" in listed.stdout  # the project's own are still there
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('experiment = "user_answer"\nscale = 3.0\n')
    ran = _cli("run", str(cfg), "--out", str(tmp_path / "run"), cwd=tmp_path, env_path=site)
    assert ran.returncode == 0, ran.stderr
    assert '"answer": 63.0' in (tmp_path / "run" / "metrics.json").read_text()


@pytest.mark.slow
def test_installed_wheel_lists_and_runs(tmp_path):
    """Build a wheel, install it into a folder, and run from it, away from the checkout."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("diffsim-*.whl")
    site = tmp_path / "site"
    inst = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert inst.returncode == 0, inst.stderr
    assert (site / "diffsim_experiments" / "ode_stability.py").is_file()
    assert not (site / "experiments").exists()
    _user_package(site)
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import diffsim, diffsim_experiments as e; print(diffsim.__file__, e.__file__)",
        ],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(site)),
        capture_output=True,
        text=True,
    )
    assert where.stdout.split() and all(str(site) in p for p in where.stdout.split())
    listed = _cli("list", cwd=tmp_path, env_path=site)
    assert listed.returncode == 0 and "ode_stability" in listed.stdout
    assert "user_answer" in listed.stdout
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('experiment = "ode_stability"\nn_dt = 4\nn_angles = 4\nsteps = 20\n')
    ran = _cli("run", str(cfg), "--out", str(tmp_path / "run"), cwd=tmp_path, env_path=site)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "run" / "metrics.json").is_file()
