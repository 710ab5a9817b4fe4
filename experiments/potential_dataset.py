"""Reference datasets for learned potentials: generated once, cached (~/.cache/diffsim/data).

`system` picks the generator in `diffsim.potentials`: a molecule labelled by GFN2-xTB
(ethanol, malonaldehyde; needs `pip install 'diffsim[xtb]'`), bulk copper labelled by
EMT (strained cells and MD), or Lennard-Jones argon clusters. The dataset is written to
the cache file (`output`, or `<system>_<method>_<n>_seed<seed>.extxyz` in the cache
folder: `$DIFFSIM_DATA`, else `~/.cache/diffsim/data`) unless that
file already holds one with the same settings, which is reused; a cache file with other
settings is never overwritten (the run fails and says why). A copy goes into the run
directory. Metrics: counts, generation time, cost per label, energy and force
statistics, the smallest interatomic distance; plots of the energy and force
distributions.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import matplotlib
import numpy as np

import diffsim.potentials as pot

matplotlib.use("Agg")


@dataclasses.dataclass(frozen=True)
class Config:
    system: str = dataclasses.field(
        default="ethanol",
        metadata={"choices": pot.DATASET_SYSTEMS, "help": "which reference system"},
    )
    n_configs: int = dataclasses.field(default=1500, metadata={"min": 1})
    temperature_K: float = dataclasses.field(
        default=500.0, metadata={"min": 0, "help": "Langevin MD temperature"}
    )
    timestep_fs: float = dataclasses.field(default=0.5, metadata={"min_exclusive": 0})
    stride: int = dataclasses.field(
        default=20, metadata={"min": 1, "help": "MD steps between recorded frames"}
    )
    equilibrate_steps: int = dataclasses.field(
        default=2000, metadata={"min": 0, "help": "MD steps before the first frame"}
    )
    seed: int = 0
    output: str = dataclasses.field(
        default="",
        metadata={
            "help": "cache file (.extxyz or .npz); empty: "
            "<system>_<method>_<n_configs>_seed<seed>.extxyz in $DIFFSIM_DATA "
            "(default ~/.cache/diffsim/data)"
        },
    )
    progress: bool = dataclasses.field(default=True, metadata={"help": "progress bar"})


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt

    # tblite's OpenMP threads gain nothing on molecules this small, spin badly on a
    # shared machine, and sum in a varying order; one thread makes frames reproducible.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    path = (
        Path(cfg.output) if cfg.output else pot.cache_path(cfg.system, cfg.n_configs, seed=cfg.seed)
    )
    reused = path.exists()
    ds = pot.load_or_generate(
        cfg.system,
        cfg.n_configs,
        seed=cfg.seed,
        path=path,
        temperature_K=cfg.temperature_K,
        timestep_fs=cfg.timestep_fs,
        stride=cfg.stride,
        equilibrate_steps=cfg.equilibrate_steps,
        progress=cfg.progress and not run.quiet,
        log=run.log,
    )
    pot.save_dataset(run.path("dataset.extxyz"), ds)

    n = ds.n_atoms
    fig, ax = plt.subplots(figsize=(5, 3.6))
    e = ds.energies / n
    ax.hist((e - e.mean()) * 1000, bins=50)
    ax.set(
        xlabel="E / atom - mean (meV)",
        ylabel="frames",
        title=f"{ds.formula}: {ds.info.get('method', '')} energies",
    )
    run.save_figure(fig, "energy_hist.png")
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.hist(ds.forces.ravel(), bins=80)
    ax.set(xlabel="force component (eV/A)", ylabel="count", yscale="log", title="forces")
    run.save_figure(fig, "force_hist.png")
    plt.close("all")

    metrics = {
        **pot.dataset_statistics(ds),
        "system": cfg.system,
        "method": ds.info.get("method", ""),
        "generation_time_s": ds.info.get("generation_time_s", float("nan")),
        "label_calls": ds.info.get("label_calls", 0),
        "seconds_per_label": ds.info.get("seconds_per_label", float("nan")),
        "reused_cache": reused,
        "cache_path": str(path),
        "energy_range_per_atom_eV": float(np.ptp(e)),
    }
    run.log(str(metrics))
    return metrics
