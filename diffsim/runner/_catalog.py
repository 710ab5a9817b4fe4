"""What `diffsim list` shows beside each experiment: its config files and typical run time.

Config files are found by their `experiment = "..."` key in `configs/` (the current
folder's, and the repository's beside the installed `diffsim`). Typical run times are
those measured for the README on 2 CPU cores (`~`: measured while other jobs shared
them, an upper bound); an experiment module may state its own as `RUN_TIME = "..."`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

# Wall-clock time of each shipped config on 2 CPU cores, as in the README's table.
RUN_TIMES: dict[str, str] = {
    "activation_memory": "~4.5 min",
    "ad_modes_cost": "~4 min",
    "adjoint_vs_bptt": "85 s",
    "arm_reach_obstacle": "~30 s",
    "ca_elementary_inference": "~1 min",
    "ca_life_inference": "~20 min",
    "ca_neural_growth": "~5.5 min",
    "ca_neural_growth_large": "long on a CPU (meant for a GPU)",
    "car_parking": "~20 s",
    "cartpole_swingup": "32 s",
    "gradient_accumulation": "~12 s",
    "gradient_horizon": "~75 s",
    "hmm_backprop_identity": "~9 min",
    "hmm_fit_real": "42 s",
    "kalman_backprop_identity": "~4 min",
    "md_cu_emt_reference": "~4 min",
    "md_emt_copper": "~5 min",
    "md_minimise_clusters": "~70 s",
    "md_npt_lj": "~9 min",
    "ode_events_bounce": "~5 min",
    "ode_stiff_kinetics": "~2 min",
    "md_lj_fluid": "~2 min",
    "md_param_fit": "~2 min",
    "mpc_disturbance": "~35 s",
    "ode_stability": "6 s",
    "pc_train_digits": "~2 min",
    "pc_train_mnist": "~4.5 min",
    "pc_vs_backprop_alignment": "~1.5 min",
    "potential_dataset": "~2 min",
    "potential_dataset_copper": "~2 min",
    "potential_dataset_lj": "30 s",
    "potential_md": "45 s",
    "potential_train": "~23 min",
    "potential_train_copper": "~40 min",
    "potential_train_lj": "~11 min",
    "quadrotor_waypoints": "~15 s",
    "scaling": "~12 min",
    "splice_credit_distance": "~26 min (19.5 of them XLA compilation)",
    "splice_genomic": "~21 min",
    "splice_uci": "~20 min (partial run)",
    "splice_uci_residual": "~26 min",
    "splice_uci_wide": "~23 min",
    "sysid_cartpole": "~75 s",
    "transposed_conv_symmetry": "~2 min",
    "underflow": "~50 s",
    "vanishing_exploding": "~3.5 min",
}


def config_folders() -> list[Path]:
    """The `configs/` folders searched: the current folder's, then the repository's."""
    folders = [Path("configs")]
    repo = Path(__file__).resolve().parents[2] / "configs"
    if repo.is_dir() and repo.resolve() != folders[0].resolve():
        folders.append(repo)
    return [f for f in folders if f.is_dir()]


def config_files() -> dict[str, list[Path]]:
    """The config files of each experiment, by experiment name (sorted paths)."""
    found: dict[str, list[Path]] = {}
    for folder in config_folders():
        for path in sorted(folder.glob("*.toml")):
            try:
                name = tomllib.loads(path.read_text()).get("experiment")
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
                continue
            if isinstance(name, str):
                shown = path if folder == Path("configs") else _short(path)
                if all(p.name != path.name for p in found.get(name, [])):
                    found.setdefault(name, []).append(shown)
    return found


def run_time(config: Path, module=None) -> str:
    """The typical run time of a config file (empty when unknown)."""
    own = getattr(module, "RUN_TIME", None)
    if isinstance(own, str) and config.stem == getattr(module, "__name__", "").split(".")[-1]:
        return own
    return RUN_TIMES.get(config.stem, "")


def _short(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
