"""From a config to a finished run directory, each rule in one place.

The config travels one way: `plan_run` loads and validates the config (or the saved config
of a run to resume) and applies every rule that can be checked before anything is written;
`claim_run` claims the run directory atomically and locks it; `execute` runs the
experiment in it and records how it ended. `run_experiment` does all three.

A run directory holds `config.toml`, `log.txt`, `status.json` (`running`, `finished`,
`failed` with the reason, or `interrupted`), `metrics.json` once finished, and whatever
the experiment writes. While a run is alive it holds `run.lock` (the process id and host);
a second run or resume of the same directory is refused, and the lock of a process that
died is taken over with a note in the log.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._config import ConfigError, apply_overrides, build_config, config_to_dict, read_toml, to_toml
from ._registry import Experiment, find_experiment

RUNS = Path("runs")
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"
LOG_FILE = "log.txt"
STATUS_FILE = "status.json"
LOCK_FILE = "run.lock"


class RunError(Exception):
    """A run that cannot start: the message names the path and the problem."""


class Run:
    """A claimed run directory that an experiment writes into.

    **Attributes:** `dir` (the run directory), `resume` (True when continuing an
    interrupted run: training loops pass `resume=run.resume` to `diffsim.fit`), `quiet`
    (no printing and no progress bars).
    """

    def __init__(self, directory: str | os.PathLike, *, resume: bool = False, quiet: bool = False):
        self.dir = Path(directory)
        self.resume = resume
        self.quiet = quiet

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r}, resume={self.resume})"

    def log(self, message: str) -> None:
        """Appends a time-stamped line to `log.txt` and prints it (unless quiet)."""
        stamp = datetime.datetime.now().strftime("%H:%M:%S")
        with open(self.dir / LOG_FILE, "a") as f:
            f.write(f"[{stamp}] {message}\n")
        if not self.quiet:
            print(message, flush=True)

    def save_figure(self, fig, name: str) -> Path:
        """Saves a matplotlib figure as `name` (PNG) in the run directory and closes it.

        Logs what `figure_problems` finds (an axis without a label, an unlabelled colour
        bar, a legend over data); raises `FigureError` for it under
        `DIFFSIM_CHECK_FIGURES=1`.
        """
        import matplotlib.pyplot as plt

        from ._figures import check_figure

        path = self.dir / name
        if path.exists() and not self.resume:
            raise FileExistsError(f"{path} exists; a run never overwrites its files")
        for problem in check_figure(fig, name):  # raises under DIFFSIM_CHECK_FIGURES=1
            self.log(f"figure {name}: {problem}")
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return path

    def path(self, name: str) -> Path:
        """A path for a file in the run directory."""
        return self.dir / name


@dataclasses.dataclass(frozen=True)
class ParallelSettings:
    """A config's `[parallel]` table: devices, determinism and the processes to join.

    `devices`: how many devices the run's mesh spans (`diffsim.fit` trains data-parallel
    on it; `--devices N` overrides it); 0: no mesh, one device. `deterministic`: XLA's
    deterministic GPU reductions (`--xla_gpu_deterministic_ops=true`, on by default so a
    resumed GPU run is bitwise equal to an uninterrupted one; the CPU is deterministic
    anyway). `coordinator` (`host:port`), `num_processes`, `process_id`: several processes
    through `diffsim.parallel.initialize` (each may come from `DIFFSIM_*` instead).
    """

    devices: int = dataclasses.field(default=0, metadata={"min": 0})
    deterministic: bool = True
    coordinator: str = ""
    num_processes: int = dataclasses.field(default=0, metadata={"min": 0})
    process_id: int = dataclasses.field(default=-1, metadata={"min": -1})


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """A validated run, not started: the experiment, its config and where it goes."""

    experiment: Experiment
    config: Any
    directory: Path | None
    """The run directory (`--out` or the run to resume); `None`: a new one under `runs`."""
    runs: Path = RUNS
    name: str = ""
    """The stem of a new default directory `runs/<name>-<time>`."""
    resume: bool = False
    parallel: ParallelSettings = ParallelSettings()


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> tuple[Experiment, Any]:
    """Reads, overrides and validates a config file; gives `(experiment, cfg)`.

    Beyond the types and bounds of `Config`, an experiment module may define
    `validate(cfg)`, raising `ValueError` for what only it understands (a missing data
    file, sizes larger than a pool); it runs here, before any run directory exists.

    A `[parallel]` table is the runner's, not the experiment's (`load_parallel`).

    **Raises:** `ConfigError` naming the file, key, value and what is allowed.
    """
    exp, cfg, _ = _load(path, overrides)
    return exp, cfg


def _load(path, overrides: Sequence[str] = ()) -> tuple[Experiment, Any, ParallelSettings]:
    path = Path(path)
    data = apply_overrides(read_toml(path), list(overrides))
    source = str(path)
    if "experiment" not in data:
        raise ConfigError(f"{source}: missing required key 'experiment' (see `diffsim list`)")
    parallel = data.pop("parallel", {})
    if not isinstance(parallel, dict):
        raise ConfigError(f"{source}: key 'parallel': expected a table, got {parallel!r}")
    settings = build_config(ParallelSettings, parallel, source, prefix="parallel.")
    exp = find_experiment(data.pop("experiment"), source)
    cfg = build_config(exp.config_cls, data, source)
    validate_config(exp, cfg, source)
    return exp, cfg, settings


def validate_config(exp: Experiment, cfg: Any, source: str) -> None:
    """Runs the experiment's own `validate(cfg)` hook, if it has one."""
    validate = getattr(exp.module, "validate", None)
    if callable(validate):
        try:
            validate(cfg)
        except (ValueError, FileNotFoundError) as e:
            raise ConfigError(f"{source}: {e}") from None


def plan_run(
    config: str | os.PathLike | None = None,
    *,
    overrides: Sequence[str] = (),
    out: str | os.PathLike | None = None,
    runs: str | os.PathLike = RUNS,
    resume: str | os.PathLike | None = None,
    devices: int | None = None,
) -> RunPlan:
    """Validates a run before anything is written: a config file (new run) or `resume`.

    `devices` (`--devices N`) replaces the config's `[parallel] devices`.

    **Raises:** `ConfigError` for the config, `RunError` for the run directory: a resumed
    directory that is not a run or already finished, `--set` with `--resume`, a config
    naming another experiment than the run to resume, an `out` that exists and is not an
    empty folder, a `runs` that is not a folder.
    """
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / CONFIG_FILE).is_file():
            raise RunError(f"--resume {run_dir}: not a run directory (no {CONFIG_FILE})")
        if (run_dir / METRICS_FILE).exists():
            raise RunError(f"--resume {run_dir}: that run already finished ({METRICS_FILE} exists)")
        if overrides:
            raise RunError("--resume continues a run with its saved config; --set is not allowed")
        exp, cfg, parallel = _load(run_dir / CONFIG_FILE)
        if devices is not None:
            parallel = dataclasses.replace(parallel, devices=devices)
        if config is not None:
            other, _ = load_config(config)
            if other.name != exp.name:
                raise RunError(
                    f"--resume {run_dir}: that run is experiment {exp.name!r}, "
                    f"but {config} names {other.name!r}"
                )
        return RunPlan(exp, cfg, run_dir, resume=True, parallel=parallel)
    if config is None:
        raise RunError(
            "run: give a config file (e.g. configs/ode_stability.toml) or --resume RUN_DIR"
        )
    exp, cfg, parallel = _load(config, list(overrides))
    if devices is not None:
        if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
            raise RunError(f"--devices: expected an integer >= 1, got {devices!r}")
        parallel = dataclasses.replace(parallel, devices=devices)
    if out is not None:
        _check_new_dir(Path(out), "--out")
    runs = Path(runs)
    if out is None and runs.exists() and not runs.is_dir():
        raise RunError(f"--runs {runs}: exists and is not a folder")
    return RunPlan(
        exp, cfg, None if out is None else Path(out), runs, Path(config).stem, parallel=parallel
    )


def claim_run(plan: RunPlan, *, quiet: bool = False) -> Run:
    """Claims the plan's run directory atomically and locks it; gives the `Run`.

    A new directory is created exclusively (`mkdir`); an existing empty `out` is claimed
    by creating its lock exclusively, so of two runs started into one folder at the same
    moment exactly one proceeds. A resumed directory is locked the same way.

    **Raises:** `RunError` naming the path and the problem.
    """
    if plan.resume:
        assert plan.directory is not None  # plan_run sets it for every resume
        run = Run(plan.directory, resume=True, quiet=quiet)
        note = _lock(run.dir, "--resume")
        if note:
            run.log(note)
        return run
    if plan.directory is None:
        directory = _new_dir(plan.runs, plan.name or plan.experiment.name)
    else:
        directory = plan.directory
        _check_new_dir(directory, "--out")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"--out {directory}: cannot create the folder ({_why(e)})") from None
    _lock(directory, "--out" if plan.directory is not None else "run directory")
    others = [p.name for p in directory.iterdir() if p.name != LOCK_FILE]
    if others:
        _unlock(directory)
        raise RunError(f"--out {directory}: exists and is not empty; a run never overwrites")
    return Run(directory, resume=False, quiet=quiet)


def execute(plan: RunPlan, run: Run) -> dict:
    """Runs the plan's experiment in the claimed `run`; gives the metrics.

    Writes the config (new runs), `status.json` and, at the end, `metrics.json`
    atomically; releases the lock however the run ends. A run that raises keeps its
    directory: `status.json` records the one-line reason and `log.txt` the traceback; the
    exception propagates.
    """
    exp, cfg = plan.experiment, plan.config
    # The library's one-line notes (e.g. a checkpoint fallback) go to the run's log.
    handler = _RunLogHandler(run)
    logging.getLogger("diffsim").addHandler(handler)
    try:
        parallel = plan.parallel
        if not plan.resume:
            saved = {"experiment": exp.name, **config_to_dict(cfg)}
            if parallel != ParallelSettings():
                saved["parallel"] = dataclasses.asdict(parallel)
            (run.dir / CONFIG_FILE).write_text(to_toml(saved))
        _write_status(run.dir, "running")
        run.log(f"{exp.name}: {exp.description}" + (" (resumed)" if plan.resume else ""))
        mesh, devices = _mesh(parallel.devices)
        run.log(
            f"devices: {devices}"
            + (f" (mesh over {mesh.devices.flat[0].platform})" if mesh is not None else "")
        )
        t0 = time.perf_counter()
        # A config field `float64` sets the precision of the whole run (default: JAX's).
        float64 = getattr(cfg, "float64", None)
        from ..parallel import use_mesh

        with use_mesh(mesh):
            if float64 is None:
                metrics = exp.fn(cfg, run)
            else:
                import jax

                with jax.enable_x64(bool(float64)):
                    metrics = exp.fn(cfg, run)
        metrics = dict(metrics or {})
        metrics.setdefault("wall_time_s", round(time.perf_counter() - t0, 3))
        metrics.setdefault("devices", devices)
        _write_atomic(
            run.dir / METRICS_FILE, json.dumps(_jsonable(metrics), indent=2, sort_keys=True) + "\n"
        )
        _write_status(run.dir, "finished")
        return metrics
    except KeyboardInterrupt:
        _write_status(run.dir, "interrupted")
        run.log(f"interrupted; resume with `diffsim run --resume {run.dir}`")
        raise
    except BaseException as e:
        reason = failure_reason(e)
        _write_status(run.dir, "failed", reason)
        with open(run.dir / LOG_FILE, "a") as f:
            f.write("".join(traceback.format_exception(e)))
        raise
    finally:
        logging.getLogger("diffsim").removeHandler(handler)
        _unlock(run.dir)


def _mesh(devices: int):
    """The run's mesh (`None` for one device) and its device count."""
    if devices <= 1:
        return None, 1
    from ..parallel import make_mesh

    try:
        mesh = make_mesh(devices)
    except ValueError as e:
        raise RunError(f"--devices {devices}: {e}") from None
    return mesh, mesh.size


class _RunLogHandler(logging.Handler):
    def __init__(self, run: Run):
        super().__init__(logging.INFO)
        self.run = run

    def emit(self, record: logging.LogRecord) -> None:
        self.run.log(record.getMessage())


def run_experiment(
    experiment: str | Experiment,
    cfg: Any = None,
    out: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    quiet: bool = False,
    devices: int | None = None,
) -> tuple[dict, Path]:
    """Runs an experiment with a config into a run directory; gives `(metrics, run_dir)`.

    `out` is the run directory to create (it must not exist, or be empty; `None`: a new
    one under `runs/`), or, with `resume=True`, an existing run directory to continue
    (a run continues with its saved config; a `cfg` given must equal it).
    """
    if resume:
        plan = plan_run(resume=out)
        if cfg is not None and cfg != plan.config:
            raise RunError(
                f"run_experiment: resume continues {out} with its saved config, which differs "
                "from the config given"
            )
    else:
        exp = experiment if isinstance(experiment, Experiment) else find_experiment(experiment)
        cfg = exp.config_cls() if cfg is None else cfg
        validate_config(exp, cfg, exp.name)
        if out is not None:
            _check_new_dir(Path(out), "out")
        parallel = ParallelSettings(devices=devices or 0)
        plan = RunPlan(
            exp, cfg, None if out is None else Path(out), RUNS, _slug(exp.name), parallel=parallel
        )
    run = claim_run(plan, quiet=quiet)
    return execute(plan, run), run.dir


def failure_reason(e: BaseException) -> str:
    """One line saying why a run failed."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def summary_table(metrics: dict) -> str:
    """The metrics as a two-column text table."""
    rows = [(k, _fmt(v)) for k, v in metrics.items()]
    width = max((len(k) for k, _ in rows), default=6)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


# --- run directories and locks -----------------------------------------------------


def _why(e: OSError) -> str:
    return e.strerror or type(e).__name__


def _slug(name: str) -> str:
    return name.replace(":", "-").replace(".", "-")


def _check_new_dir(directory: Path, what: str) -> None:
    if directory.exists() and not directory.is_dir():
        raise RunError(f"{what} {directory}: exists and is not a folder")
    if directory.is_dir() and any(p.name != LOCK_FILE for p in directory.iterdir()):
        raise RunError(f"{what} {directory}: exists and is not empty; a run never overwrites")
    for parent in directory.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunError(f"{what} {directory}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise RunError(f"{what} {directory}: cannot write in {parent} (permission denied)")
            break


def _new_dir(base: Path, name: str) -> Path:
    """Creates `base/<name>-<timestamp>` (with a suffix if taken); never reuses a folder."""
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"--runs {base}: cannot create the folder ({_why(e)})") from None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        candidate = base / (f"{name}-{stamp}" + (f"-{i}" if i else ""))
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError as e:
            raise RunError(f"--runs {base}: cannot create a run directory ({_why(e)})") from None
        return candidate
    raise RunError(f"--runs {base}: could not create a new run directory")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock(directory: Path, what: str) -> str:
    """Creates `directory/run.lock` exclusively; gives a note if a stale lock was taken over."""
    path = directory / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    note = ""
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
                pid, host = int(holder["pid"]), str(holder["host"])
            except FileNotFoundError:
                continue  # released meanwhile: try again
            except (ValueError, KeyError, TypeError, OSError):
                pid, host = -1, "?"
            if host == me["host"] and not _pid_alive(pid):
                # A dead process's lock: exactly one contender renames it away.
                try:
                    os.rename(path, directory / f"{LOCK_FILE}.stale-{os.getpid()}")
                except FileNotFoundError:
                    continue
                os.unlink(directory / f"{LOCK_FILE}.stale-{os.getpid()}")
                note = f"took over the lock of process {pid} on {host}, which is no longer running"
                continue
            raise RunError(
                f"{what} {directory}: in use by a running process (pid {pid} on {host}); "
                f"wait for it to finish, or remove {path} if that process is gone"
            ) from None
        except OSError as e:
            raise RunError(f"{what} {directory}: cannot write in it ({_why(e)})") from None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(me) + "\n")
        return note
    raise RunError(f"{what} {directory}: could not take its lock")


def _unlock(directory: Path) -> None:
    try:
        os.unlink(directory / LOCK_FILE)
    except FileNotFoundError:
        pass


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_status(directory: Path, status: str, reason: str | None = None) -> None:
    record = {"status": status, "time": datetime.datetime.now().isoformat(timespec="seconds")}
    if reason is not None:
        record["reason"] = reason
    _write_atomic(directory / STATUS_FILE, json.dumps(record) + "\n")


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
