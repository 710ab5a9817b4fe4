"""The data-set cache: `load_or_generate` generates a reference data set once, writes it
into the cache folder with its settings, and reads it back while the settings match.

The cache folder is, in order: the `cache_dir` argument; the environment variable
`DIFFSIM_DATA`; `$XDG_CACHE_HOME/diffsim/data` (by default `~/.cache/diffsim/data`).
`default_cache_dir()` says which.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ._dataset import Dataset
from ._files import _suffix, load_dataset, save_dataset
from ._reference import _settings, generate_copper, generate_lj_clusters, generate_molecule

DATASET_SYSTEMS = ("ethanol", "malonaldehyde", "copper", "lj_cluster")
_SYSTEM_GENERATORS: dict[str, tuple[Callable[..., Dataset], dict]] = {
    "ethanol": (generate_molecule, {"name": "ethanol"}),
    "malonaldehyde": (generate_molecule, {"name": "malonaldehyde"}),
    "copper": (generate_copper, {}),
    "lj_cluster": (generate_lj_clusters, {}),
}


DATA_ENV = "DIFFSIM_DATA"


def default_cache_dir() -> Path:
    """Gives the folder where data sets are cached when no `cache_dir` is given.

    `$DIFFSIM_DATA` if set, else `$XDG_CACHE_HOME/diffsim/data`, else
    `~/.cache/diffsim/data`: one place per user, whatever the current folder.
    """
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join("~", ".cache")
    return Path(base).expanduser() / "diffsim" / "data"


def cache_path(
    system: str,
    n_configs: int,
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    method: str | None = None,
) -> Path:
    """Gives the default cache file `cache_dir/<system>_<method>_<n_configs>_seed<seed>.extxyz`
    (method: the xTB method of a molecule, `emt` for copper, `lj` for LJ clusters;
    `cache_dir`: `default_cache_dir()` when `None`)."""
    _check_system(system)
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    if system in ("ethanol", "malonaldehyde"):
        label = (method or "GFN2-xTB").lower()
    else:
        label = {"copper": "emt", "lj_cluster": "lj"}[system]
    return Path(cache_dir) / f"{system}_{label}_{n_configs}_seed{seed}.extxyz"


def load_or_generate(
    system: str,
    n_configs: int,
    *,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    path: str | os.PathLike | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    **settings,
) -> Dataset:
    """Gives the dataset of `system` (one of `DATASET_SYSTEMS`), generated once and cached.

    The file is `path`, or `cache_path(system, n_configs, seed=..., cache_dir=...)` (the
    folder: `cache_dir`, else `$DIFFSIM_DATA`, else `~/.cache/diffsim/data`). If it
    exists and was generated with the same settings (every generator argument, defaults
    included), it is read; otherwise the dataset is generated with
    `generate_molecule`/`generate_copper`/`generate_lj_clusters` (`**settings` are their
    keyword arguments, e.g. `temperature_K`, `stride`) and written there, with a progress
    bar on stderr (`progress=False`: none). Generating takes seconds for `lj_cluster`, a
    minute or two for `copper` (300 frames) and `ethanol` (1500 frames, GFN2-xTB); reading
    the cache takes well under a second. `log` receives a line saying which happened
    (default: printed to stderr).

    **Raises:** `FileExistsError` if the file exists with different settings (it is never
    overwritten); `ValueError` for an unknown system or setting.

    **Example:** `ds = load_or_generate("ethanol", 1500, seed=0)`.
    """
    _check_system(system)
    generator, fixed = _SYSTEM_GENERATORS[system]
    params = inspect.signature(generator).parameters
    allowed = sorted(set(params) - set(fixed) - {"n_configs", "seed", "progress"})
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(
            f"load_or_generate: unknown setting(s) {unknown} for {system!r} "
            f"(allowed: {', '.join(allowed)})"
        )
    kwargs = {**fixed, **settings, "seed": seed}
    requested = _settings(generator, {**kwargs, "n_configs": n_configs})
    if path is None:
        path = cache_path(
            system, n_configs, seed=seed, cache_dir=cache_dir, method=settings.get("method")
        )
    path = Path(path)
    _suffix(path)
    say = log or (lambda message: print(message, file=sys.stderr))
    if path.exists():
        ds = load_dataset(path)
        stored = {"system": ds.info.get("system"), **(ds.info.get("settings") or {})}
        wanted = {"system": system, **requested}
        if stored != wanted:
            diffs = [
                f"{k}: cached {stored.get(k, '<missing>')!r}, requested {wanted.get(k)!r}"
                for k in sorted(set(stored) | set(wanted))
                if stored.get(k, "<missing>") != wanted.get(k)
            ]
            raise FileExistsError(
                f"{path} holds a dataset generated with different settings "
                f"({'; '.join(diffs)}); it is not overwritten: delete it or choose "
                "another path"
            )
        say(f"reusing cached dataset {path} ({len(ds)} frames, same settings)")
        return ds
    say(f"generating {n_configs} frames of {system} -> {path}")
    ds = generator(n_configs=n_configs, progress=progress, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(path, ds)
    seconds = ds.info["generation_time_s"]
    say(f"generated {len(ds)} frames in {seconds:.1f} s; cached in {path}")
    return ds


# --- internals ---------------------------------------------------------------------


def _check_system(system: str) -> None:
    if system not in DATASET_SYSTEMS:
        raise ValueError(f"unknown system {system!r}; expected one of {DATASET_SYSTEMS}")
