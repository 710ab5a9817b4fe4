"""`diffsim run | list`: run experiment configs from the command line."""

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
