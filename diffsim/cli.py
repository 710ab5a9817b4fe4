"""`diffsim run | list | report | forces`: run experiment configs, put runs side by side,
evaluate a trained potential."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_CONFIG = 2


def _error(message: str) -> int:
    print(f"diffsim: error: {message}", file=sys.stderr)
    return EXIT_CONFIG


def _cmd_list(args) -> int:
    from .runner import ConfigError, find_experiment, list_experiments
    from .runner._catalog import config_files, run_time

    names = list_experiments()
    configs = config_files()
    width = max((len(n) for n in names), default=0)
    for name in names:
        module = None
        try:
            exp = find_experiment(name)
            description, module = exp.description, exp.module
        except ConfigError as e:  # a broken entry point of another package
            description = f"(cannot load: {e})"
        print(f"{name:<{width}}  {description}")
        for path in configs.get(name, []):
            took = run_time(path, module)
            print(f"{'':<{width}}    {path}" + (f"  ({took} on 2 CPU cores)" if took else ""))
    return 0


def _cmd_run(args) -> int:
    from ._checkpoint import CheckpointError
    from .runner import ConfigError, RunError, claim_run, execute, plan_run, summary_table
    from .runner._compile import (
        compile_cache_dir,
        enable_compile_cache,
        history_file,
        watch_compiles,
    )

    cache_option = "off" if args.no_compile_cache else args.compile_cache
    try:
        plan = plan_run(
            args.config,
            overrides=args.set or [],
            out=args.out,
            runs=args.runs,
            resume=args.resume,
            devices=args.devices,
        )
        if not args.check:
            _start_devices(plan.parallel)
        if args.check:
            where = plan.directory if plan.directory is not None else f"a new folder in {plan.runs}"
            print(f"{plan.experiment.name}: config valid; would run in {where}")
            return 0
        run = claim_run(plan, quiet=args.quiet)
    except (ConfigError, RunError, ValueError) as e:
        return _error(str(e))
    cache = enable_compile_cache(compile_cache_dir(cache_option))
    try:
        with watch_compiles(run.log, history=history_file(cache, plan.experiment.name)) as watch:
            metrics = execute(plan, run)
    except KeyboardInterrupt:
        print(
            f"diffsim: interrupted; resume with `diffsim run --resume {run.dir}`", file=sys.stderr
        )
        return 130
    except CheckpointError as e:  # a resume that cannot read its checkpoints: bad input
        print(f"diffsim: cannot resume: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from .runner import LOG_FILE, failure_reason

        print(
            f"diffsim: run failed: {failure_reason(e)} (traceback in {run.dir / LOG_FILE})",
            file=sys.stderr,
        )
        return 1
    run.log(
        f"XLA compilation: {watch.total_s:.1f} s"
        + (f" (compilation cache: {cache})" if cache else " (compilation cache off)")
    )
    _write_report(run.dir)
    if not args.quiet:
        print()
        print(summary_table(metrics))
    print(f"\nrun directory: {run.dir}")
    return 0


def _start_devices(parallel) -> None:
    """Sets XLA's flags and joins the other processes before JAX starts its backend.

    Importing the experiment (in `plan_run`) imports jax but does not start it, so the
    flags still take effect; a device count that did not is a `ValueError` naming
    `XLA_FLAGS` (from `make_mesh`).
    """
    from .parallel import initialize, make_mesh, prepare_devices

    devices = parallel.devices if parallel.devices > 1 else None
    prepare_devices(devices, deterministic=parallel.deterministic)
    initialize(
        parallel.coordinator or None,
        parallel.num_processes or None,
        parallel.process_id if parallel.process_id >= 0 else None,
    )
    if devices is not None:
        make_mesh(devices)


def _write_report(run_dir: Path) -> None:
    from .runner._report import write_report

    try:
        write_report([run_dir], run_dir / "report.html")
    except Exception as e:  # a report is a convenience: never fail a finished run for it
        print(f"diffsim: could not write report.html: {e}", file=sys.stderr)


def _cmd_report(args) -> int:
    from .runner._report import ReportError, write_report

    out = Path(args.out)
    if out.exists() and not args.force:
        return _error(f"--out {out}: exists; pass --force to replace it")
    try:
        write_report([Path(d) for d in args.run_dirs], out)
    except ReportError as e:
        return _error(str(e))
    print(f"wrote {out} ({len(args.run_dirs)} run(s))")
    return 0


def _cmd_forces(args) -> int:
    model_path, structure = Path(args.model), Path(args.structure)
    if not model_path.exists():
        return _error(f"--model {model_path}: no such file or directory")
    if not structure.is_file():
        return _error(f"--structure {structure}: no such file")
    if args.out is not None:
        out, parent = Path(args.out), Path(args.out).absolute().parent
        if out.exists():
            return _error(f"--out {out}: exists; a result never overwrites a file")
        if not parent.is_dir():
            return _error(f"--out {out}: the folder {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            return _error(f"--out {out}: cannot write in {parent} (permission denied)")
    try:
        import ase.io
    except ImportError:
        return _error("forces needs ASE: pip install 'diffsim[molecular]'")
    from .potentials import load_model, predict

    try:
        model = load_model(model_path)
    except (FileNotFoundError, ValueError) as e:
        return _error(f"--model: {e}")
    try:
        frames = ase.io.read(structure, index=args.index, format=args.format)
    except Exception as e:  # ASE raises many kinds for a malformed file
        return _error(f"--structure {structure}: cannot read it as a structure ({e})")
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        return _error(f"--structure {structure}: no frames selected by --index {args.index}")
    results = []
    for k, atoms in enumerate(frames):
        try:
            results.append(predict(model, atoms))
        except ValueError as e:
            return _error(f"--structure {structure}, frame {k}: {e}")
    if args.out is not None:
        from ase.calculators.singlepoint import SinglePointCalculator

        for atoms, res in zip(frames, results):
            atoms.calc = SinglePointCalculator(atoms, energy=res["energy"], forces=res["forces"])
        ase.io.write(args.out, frames, format="extxyz")
        print(f"wrote {len(frames)} frame(s) with energy and forces to {args.out}")
        return 0
    for k, (atoms, res) in enumerate(zip(frames, results)):
        print(f"frame {k}: {len(atoms)} atoms, energy {res['energy']:.8f} eV")
        print(f"{'atom':>6} {'el':>3} {'fx (eV/A)':>14} {'fy (eV/A)':>14} {'fz (eV/A)':>14}")
        for i, (sym, f) in enumerate(zip(atoms.get_chemical_symbols(), res["forces"])):
            print(f"{i:>6} {sym:>3} {f[0]:>14.8f} {f[1]:>14.8f} {f[2]:>14.8f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffsim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run an experiment config")
    p_run.add_argument("config", nargs="?", help="configs/NAME.toml")
    p_run.add_argument("--out", help="run directory to create (default runs/<config>-<time>)")
    p_run.add_argument("--runs", default="runs", help="parent folder of default run directories")
    p_run.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value (TOML syntax), repeatable",
    )
    p_run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p_run.add_argument(
        "--devices",
        type=int,
        metavar="N",
        help="run on a mesh of N devices (diffsim.fit trains data-parallel); on the CPU "
        "this forces N host devices (XLA_FLAGS=--xla_force_host_platform_device_count=N)",
    )
    p_run.add_argument(
        "--quiet", action="store_true", help="print only errors and the run directory"
    )
    p_run.add_argument(
        "--check",
        action="store_true",
        help="validate the config and the run directory, then stop (nothing is written)",
    )
    p_run.add_argument(
        "--compile-cache",
        metavar="DIR",
        help="JAX's persistent compilation cache folder (default $DIFFSIM_COMPILE_CACHE or "
        "~/.cache/diffsim/jax; 'off' to switch it off)",
    )
    p_run.add_argument(
        "--no-compile-cache", action="store_true", help="do not use the compilation cache"
    )
    p_run.set_defaults(func=_cmd_run)
    p_list = sub.add_parser(
        "list", help="list the experiments, their config files and typical run times"
    )
    p_list.set_defaults(func=_cmd_list)
    p_report = sub.add_parser(
        "report", help="one HTML page with several runs side by side (config, metrics, figures)"
    )
    p_report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    p_report.add_argument("--out", default="report.html", help="the page to write")
    p_report.add_argument("--force", action="store_true", help="replace --out if it exists")
    p_report.set_defaults(func=_cmd_report)
    p_forces = sub.add_parser(
        "forces", help="energy and forces of structures from a trained potential"
    )
    p_forces.add_argument(
        "--model", required=True, help="a potential_train run directory or a model.eqx"
    )
    p_forces.add_argument("--structure", required=True, help="structure file (xyz, extxyz, ...)")
    p_forces.add_argument("--out", help="write frames with energy and forces (extxyz)")
    p_forces.add_argument("--index", default=":", help="frames to take (ASE syntax; default all)")
    p_forces.add_argument("--format", help="file format for ASE (default: from the suffix)")
    p_forces.set_defaults(func=_cmd_forces)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:  # outside a run (a run's own interruption names its directory)
        print("diffsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `diffsim list | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
