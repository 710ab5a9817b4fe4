"""`diffsim run | list | forces`: run experiment configs; evaluate a trained potential."""

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
    from .runner import find_experiment, list_experiments

    names = list_experiments()
    width = max((len(n) for n in names), default=0)
    for name in names:
        print(f"{name:<{width}}  {find_experiment(name).description}")
    return 0


def _cmd_run(args) -> int:
    from .runner import (
        CONFIG_FILE,
        METRICS_FILE,
        ConfigError,
        load_config,
        run_experiment,
        summary_table,
    )

    if args.resume is not None:
        run_dir = Path(args.resume)
        if not (run_dir / CONFIG_FILE).is_file():
            return _error(f"--resume {run_dir}: not a run directory (no {CONFIG_FILE})")
        if (run_dir / METRICS_FILE).exists():
            return _error(f"--resume {run_dir}: that run already finished ({METRICS_FILE} exists)")
        if args.set:
            return _error("--resume continues a run with its saved config; --set is not allowed")
        try:
            exp, cfg = load_config(run_dir / CONFIG_FILE)
            if args.config is not None:
                other, _ = load_config(args.config)
                if other.name != exp.name:
                    return _error(
                        f"--resume {run_dir}: that run is experiment {exp.name!r}, "
                        f"but {args.config} names {other.name!r}"
                    )
        except ConfigError as e:
            return _error(str(e))
        out, resume = run_dir, True
    else:
        if args.config is None:
            return _error(
                "run: give a config file (e.g. configs/ode_stability.toml) or --resume RUN_DIR"
            )
        try:
            exp, cfg = load_config(args.config, args.set or [])
        except ConfigError as e:
            return _error(str(e))
        out, resume = args.out, False
        if out is not None and Path(out).exists() and any(Path(out).iterdir()):
            return _error(f"--out {out}: exists and is not empty; a run never overwrites")
        if out is None:
            from .runner import new_run_dir

            out = new_run_dir(Path(args.config).stem, base=args.runs)
    metrics, run_dir = run_experiment(exp, cfg, out, resume=resume)
    print()
    print(summary_table(metrics))
    print(f"\nrun directory: {run_dir}")
    return 0


def _cmd_forces(args) -> int:
    model_path, structure = Path(args.model), Path(args.structure)
    if not model_path.exists():
        return _error(f"--model {model_path}: no such file or directory")
    if not structure.is_file():
        return _error(f"--structure {structure}: no such file")
    if args.out is not None and Path(args.out).exists():
        return _error(f"--out {args.out}: exists; a result never overwrites a file")
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
    p_run.set_defaults(func=_cmd_run)
    p_list = sub.add_parser("list", help="list the experiments")
    p_list.set_defaults(func=_cmd_list)
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
    except KeyboardInterrupt:
        print("diffsim: interrupted; resume with `diffsim run --resume RUN_DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
