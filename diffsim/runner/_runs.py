"""Run directories, the experiment registry, and running an experiment from a config."""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import json
import math
import os
import pkgutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from ._config import (
    ConfigError,
    apply_overrides,
    build_config,
    config_to_dict,
    read_toml,
    to_toml,
)

RUNS = Path("runs")
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.txt"


class Run:
    """The run directory an experiment writes into.

    **Attributes:** `dir` (the run directory, created), `resume` (True when continuing an
    interrupted run, so training loops should pass `resume=True` to `diffsim.fit`).
    """

    def __init__(self, directory: str | os.PathLike, *, resume: bool = False, quiet: bool = False):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.resume = resume
        self.quiet = quiet

    def log(self, message: str) -> None:
        """Appends a time-stamped line to `log.txt` and prints it."""
        stamp = datetime.datetime.now().strftime("%H:%M:%S")
        with open(self.dir / LOG_FILE, "a") as f:
            f.write(f"[{stamp}] {message}\n")
        if not self.quiet:
            print(message, flush=True)

    def save_figure(self, fig, name: str) -> Path:
        """Saves a matplotlib figure as `name` (PNG) in the run directory and closes it."""
        import matplotlib.pyplot as plt

        path = self.dir / name
        if path.exists() and not self.resume:
            raise FileExistsError(f"{path} exists; a run never overwrites its files")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return path

    def path(self, name: str) -> Path:
        """A path for a new file in the run directory."""
        return self.dir / name


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    module: ModuleType
    config_cls: type
    fn: Callable

    @property
    def description(self) -> str:
        doc = (self.module.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


def find_experiment(name: str, source: str = "config") -> Experiment:
    """Gives the experiment named `name` (`experiments/<name>.py`) or `"module:function"`."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: key 'experiment' must name an experiment, got {name!r}")
    if ":" in name:
        mod_name, fn_name = name.split(":", 1)
        if os.getcwd() not in sys.path:  # a user's own module beside their config
            sys.path.insert(0, os.getcwd())
    else:
        mod_name, fn_name = f"experiments.{name}", "run"
        known = list_experiments()
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"{source}: key 'experiment': unknown experiment {name!r}{hint} "
                f"(run `diffsim list`; or give 'module:function')"
            )
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ConfigError(f"{source}: key 'experiment': cannot import {mod_name!r}: {e}") from None
    fn = getattr(module, fn_name, None)
    cls = getattr(module, "Config", None)
    if not callable(fn) or cls is None or not dataclasses.is_dataclass(cls):
        raise ConfigError(
            f"{source}: key 'experiment': {mod_name} needs a dataclass `Config` and a "
            f"function `{fn_name}(cfg, run)`"
        )
    return Experiment(name, module, cls, fn)


def list_experiments() -> list[str]:
    import experiments

    return sorted(
        m.name for m in pkgutil.iter_modules(experiments.__path__) if not m.name.startswith("_")
    )


def load_config(path: str | os.PathLike, overrides: list[str] = ()) -> tuple[Experiment, Any]:
    """Reads, overrides and validates a config file; gives `(experiment, cfg)`.

    **Raises:** `ConfigError` naming the file, key, value and what is allowed.
    """
    path = Path(path)
    data = apply_overrides(read_toml(path), list(overrides))
    source = str(path)
    if "experiment" not in data:
        raise ConfigError(f"{source}: missing required key 'experiment' (see `diffsim list`)")
    exp = find_experiment(data.pop("experiment"), source)
    cfg = build_config(exp.config_cls, data, source)
    return exp, cfg


def new_run_dir(name: str, base: str | os.PathLike = RUNS) -> Path:
    """Creates `base/<name>-<timestamp>` (with a suffix if taken); never reuses a folder."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        candidate = base / (f"{name}-{stamp}" + (f"-{i}" if i else ""))
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"could not create a new run directory under {base}")


def run_experiment(
    experiment: str | Experiment,
    cfg: Any = None,
    out: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    quiet: bool = False,
) -> tuple[dict, Path]:
    """Runs an experiment with a config into a new run directory; gives `(metrics, run_dir)`.

    `out` is the run directory to create (it must not exist, or must be empty), or, with
    `resume=True`, an existing run directory to continue.
    """
    exp = experiment if isinstance(experiment, Experiment) else find_experiment(experiment)
    if cfg is None:
        cfg = exp.config_cls()
    if resume:
        run_dir = Path(out)
    elif out is None:
        run_dir = new_run_dir(exp.name.replace(":", "-").replace(".", "-"))
    else:
        run_dir = Path(out)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise FileExistsError(f"{run_dir} exists and is not empty; a run never overwrites")
        run_dir.mkdir(parents=True, exist_ok=True)
    config_text = to_toml({"experiment": exp.name, **config_to_dict(cfg)})
    config_path = run_dir / CONFIG_FILE
    if not resume:
        config_path.write_text(config_text)
    run = Run(run_dir, resume=resume, quiet=quiet)
    run.log(f"{exp.name}: {exp.description}")
    t0 = time.perf_counter()
    # A config field `float64` sets the precision of the whole run (default: JAX's).
    float64 = getattr(cfg, "float64", None)
    if float64 is None:
        metrics = exp.fn(cfg, run)
    else:
        import jax

        with jax.enable_x64(bool(float64)):
            metrics = exp.fn(cfg, run)
    metrics = dict(metrics or {})
    metrics.setdefault("wall_time_s", round(time.perf_counter() - t0, 3))
    tmp = run_dir / (METRICS_FILE + ".tmp")
    tmp.write_text(json.dumps(_jsonable(metrics), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, run_dir / METRICS_FILE)
    return metrics, run_dir


def summary_table(metrics: dict) -> str:
    rows = [(k, _fmt(v)) for k, v in metrics.items()]
    width = max((len(k) for k, _ in rows), default=6)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, bool | int | float | str) or x is None:
        return x
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)
