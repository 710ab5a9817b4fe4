"""Reference data generated here, nothing downloaded: three generators that sample
configurations with ASE's Langevin dynamics (and, for copper, strained and rattled
cells) and label them with a reference calculator.

- `generate_lj_clusters`: Lennard-Jones argon clusters (ASE's `LennardJones`, smooth
  cutoff).
- `generate_copper`: bulk fcc copper (ASE's `EMT`).
- `generate_molecule`: small molecules labelled by GFN-xTB (the optional `tblite`).

Each gives a `Dataset` whose `info` records the generator's settings (every argument,
defaults included), the versions used and the time taken. Units are ASE's: Angstrom,
eV, eV/Angstrom.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import inspect
import json
import time
from collections.abc import Sequence

import numpy as np

from .._checks import check_positive
from ._dataset import Dataset

_UNITS = {"length": "Angstrom", "energy": "eV", "force": "eV/Angstrom"}
_XTB_METHODS = ("GFN2-xTB", "GFN1-xTB", "IPEA1-xTB")

# Malonaldehyde (C3H4O2, the enol HO-CH=CH-CHO with its intramolecular hydrogen bond)
# is not in ASE's g2 collection: a planar Cs geometry optimised with GFN2-xTB
# (O-H 1.00, H...O 1.72, C-O 1.31, C=O 1.23, C=C 1.36, C-C 1.44 Angstrom).
_MALONALDEHYDE = (
    ("C", (-1.1918, -0.6649, 0.0)),
    ("C", (-0.0150, -1.3409, 0.0)),
    ("C", (1.2226, -0.6153, 0.0)),
    ("O", (-1.2942, 0.6418, 0.0)),
    ("O", (1.3051, 0.6073, 0.0)),
    ("H", (-0.3667, 1.0138, 0.0)),
    ("H", (-2.1480, -1.1782, 0.0)),
    ("H", (0.0028, -2.4157, 0.0)),
    ("H", (2.1388, -1.2278, 0.0)),
)
_MOLECULE_ALIASES = {"ethanol": "CH3CH2OH"}


def generate_lj_clusters(
    n_configs: int,
    *,
    n_atoms: int = 13,
    temperature_K: float = 30.0,
    timestep_fs: float = 5.0,
    stride: int = 20,
    equilibrate_steps: int = 2000,
    friction_per_fs: float = 0.005,
    sigma: float = 3.4,
    epsilon: float = 0.0104,
    seed: int = 0,
    progress: bool = False,
) -> Dataset:
    """Gives argon-like Lennard-Jones clusters in free space, labelled by ASE's
    `LennardJones` (cutoff `3 sigma`, smooth from `2 sigma`: energy and forces continuous).

    A compact cluster (the `n_atoms` fcc sites nearest a centre, relaxed with FIRE) is
    run with Langevin dynamics at `temperature_K`; after `equilibrate_steps`, a frame is
    kept every `stride` steps. LJ13 stays bound below about 35 K (epsilon/k_B = 121 K).

    **Arguments:** `sigma` (Angstrom), `epsilon` (eV); `timestep_fs`; `friction_per_fs`
    the Langevin friction (1/fs); `seed` for the velocities and noise; `progress` a bar.

    **Raises:** `ValueError` for an invalid argument; `RuntimeError` if an atom leaves
    the cluster (lower the temperature).
    """
    settings = _settings(generate_lj_clusters, locals())
    _positive(n_configs=n_configs, timestep_fs=timestep_fs, sigma=sigma, epsilon=epsilon)
    _at_least(1, stride=stride)
    _at_least(2, n_atoms=n_atoms)
    _non_negative(temperature_K=temperature_K, equilibrate_steps=equilibrate_steps)
    _non_negative(friction_per_fs=friction_per_fs)
    import ase
    from ase.build import bulk
    from ase.calculators.lj import LennardJones
    from ase.optimize import FIRE

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    a = np.sqrt(2.0) * 2 ** (1 / 6) * sigma  # fcc with neighbours at the LJ minimum
    k = int(np.ceil((n_atoms / 4) ** (1 / 3))) + 2
    lattice = bulk("Ar", "fcc", a=a, cubic=True).repeat(k)
    sites = lattice.positions - lattice.positions[len(lattice) // 2]
    sites = sites[np.argsort(np.linalg.norm(sites, axis=1), kind="stable")[:n_atoms]]
    atoms = ase.Atoms(numbers=np.full(n_atoms, 18), positions=sites, pbc=False)
    calc = LennardJones(sigma=sigma, epsilon=epsilon, rc=3 * sigma, ro=2 * sigma, smooth=True)
    counter = _count_calls(calc)
    atoms.calc = calc
    FIRE(atoms, logfile=None).run(  # pyright: ignore[reportArgumentType]
        fmax=1e-4, steps=2000
    )
    frames = _langevin_frames(
        atoms,
        n_configs,
        temperature_K=temperature_K,
        timestep_fs=timestep_fs,
        friction_per_fs=friction_per_fs,
        stride=stride,
        equilibrate_steps=equilibrate_steps,
        rng=rng,
        progress=progress,
        desc="LJ cluster",
    )
    for b, pos in enumerate(frames["positions"]):
        if not _connected(pos, 2.0 * sigma):
            raise RuntimeError(
                f"generate_lj_clusters: an atom left the cluster by frame {b} at "
                f"{temperature_K} K; lower temperature_K"
            )
    return _finish(
        "generate_lj_clusters",
        "lj_cluster",
        "LennardJones(smooth)",
        "Langevin MD of a relaxed compact cluster",
        settings,
        atoms.numbers,
        frames,
        t0,
        counter[0],
    )


def generate_copper(
    n_configs: int,
    *,
    repeat: int = 3,
    lattice_constant: float = 3.61,
    temperature_K: float = 600.0,
    timestep_fs: float = 2.0,
    stride: int = 20,
    equilibrate_steps: int = 500,
    friction_per_fs: float = 0.005,
    strain: float = 0.02,
    rattle: float = 0.05,
    seed: int = 0,
    progress: bool = False,
) -> Dataset:
    """Gives bulk fcc copper labelled by ASE's `EMT`, one cell per frame.

    The cubic cell (`lattice_constant`, repeated `repeat` times: 108 atoms for 3) gives
    `n_configs // 2` perturbed frames first (a random symmetric strain with entries in
    `[-strain, strain]`, atoms scaled with the cell, then rattled by a normal
    displacement of standard deviation `rattle` Angstrom) and then the rest as Langevin
    MD snapshots at `temperature_K` in the unstrained cell (every `stride` steps after
    `equilibrate_steps`). Positions are wrapped into the cell.

    **Raises:** `ValueError` for an invalid argument.
    """
    settings = _settings(generate_copper, locals())
    _positive(n_configs=n_configs, timestep_fs=timestep_fs, lattice_constant=lattice_constant)
    _at_least(1, repeat=repeat, stride=stride)
    _non_negative(temperature_K=temperature_K, equilibrate_steps=equilibrate_steps)
    _non_negative(friction_per_fs=friction_per_fs, strain=strain, rattle=rattle)
    if strain >= 0.5:
        raise ValueError(f"generate_copper: strain must be < 0.5, got {strain}")
    from ase.build import bulk
    from ase.calculators.emt import EMT

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    ideal = bulk("Cu", "fcc", a=lattice_constant, cubic=True).repeat(repeat)
    calc = EMT()
    counter = _count_calls(calc)
    n_perturbed = n_configs // 2
    frames = {"positions": [], "energies": [], "forces": [], "cells": []}
    for _ in range(n_perturbed):
        atoms = ideal.copy()
        a = rng.uniform(-strain, strain, (3, 3))
        atoms.set_cell(ideal.cell[:] @ (np.eye(3) + 0.5 * (a + a.T)), scale_atoms=True)
        atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
        atoms.wrap()
        atoms.calc = calc
        _record(frames, atoms)
    atoms = ideal.copy()
    atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
    atoms.wrap()
    atoms.calc = calc
    md = _langevin_frames(
        atoms,
        n_configs - n_perturbed,
        temperature_K=temperature_K,
        timestep_fs=timestep_fs,
        friction_per_fs=friction_per_fs,
        stride=stride,
        equilibrate_steps=equilibrate_steps,
        rng=rng,
        progress=progress,
        desc="Cu EMT",
    )
    for key in frames:
        frames[key] += md[key]
    return _finish(
        "generate_copper",
        "copper",
        "EMT",
        f"{n_perturbed} strained+rattled cells, then {n_configs - n_perturbed} Langevin MD frames",
        settings,
        ideal.numbers,
        frames,
        t0,
        counter[0],
    )


def generate_molecule(
    name: str,
    n_configs: int,
    *,
    temperature_K: float = 500.0,
    timestep_fs: float = 0.5,
    stride: int = 20,
    equilibrate_steps: int = 2000,
    friction_per_fs: float = 0.01,
    method: str = "GFN2-xTB",
    accuracy: float = 0.01,
    relax: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> Dataset:
    """Gives frames of a molecule in free space labelled by GFN-xTB (`tblite`).

    `name` is `"ethanol"` (ASE's `CH3CH2OH`), `"malonaldehyde"` (C3H4O2, the
    hydrogen-bonded enol, from built-in coordinates since ASE's g2 lacks it) or any name
    in `ase.collections.g2`. The geometry is optimised with `method` (if `relax`), run
    with Langevin dynamics at `temperature_K`, and after `equilibrate_steps` a frame is
    kept every `stride` steps. The dynamics restart each SCF from the previous step's
    solution; a kept frame is labelled by a fresh SCF (superposition-of-atomic-densities
    guess) converged to tblite's `accuracy` (smaller is tighter; its default is 1), so a
    label depends on the positions only, to about 1e-6 eV/Angstrom, not on the history.
    GFN2-xTB costs a few ms per ethanol force call. Frames are reproducible for a seed
    up to tblite's parallel summation order (`OMP_NUM_THREADS=1` makes them bitwise so).

    **Raises:** `ImportError` without tblite (`pip install 'diffsim[xtb]'`); `ValueError`
    for an unknown molecule or method or an invalid argument.
    """
    settings = _settings(generate_molecule, locals())
    _positive(n_configs=n_configs, timestep_fs=timestep_fs)
    _at_least(1, stride=stride)
    _non_negative(temperature_K=temperature_K, equilibrate_steps=equilibrate_steps)
    _non_negative(friction_per_fs=friction_per_fs)
    _positive(accuracy=accuracy)
    if method not in _XTB_METHODS:
        raise ValueError(f"generate_molecule: method must be one of {_XTB_METHODS}, got {method!r}")
    atoms = _build_molecule(name)
    try:
        from tblite.ase import TBLite
    except ImportError as e:
        raise ImportError(
            "generate_molecule needs tblite for GFN-xTB labels: pip install 'diffsim[xtb]'"
        ) from e
    from ase.optimize import BFGS

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    calc = TBLite(method=method, verbosity=0)
    counter = _count_calls(calc)
    atoms.calc = calc
    if relax:
        BFGS(atoms, logfile=None).run(fmax=0.01, steps=500)

    def label(frame):
        probe = frame.copy()
        probe.calc = TBLite(method=method, verbosity=0, accuracy=accuracy)
        counter[0] += 1
        return probe.get_potential_energy(), probe.get_forces()

    frames = _langevin_frames(
        atoms,
        n_configs,
        temperature_K=temperature_K,
        timestep_fs=timestep_fs,
        friction_per_fs=friction_per_fs,
        stride=stride,
        equilibrate_steps=equilibrate_steps,
        rng=rng,
        progress=progress,
        desc=name,
        label=label,
    )
    return _finish(
        "generate_molecule",
        name,
        method,
        ("Langevin MD from the optimised geometry" if relax else "Langevin MD")
        + f"; frames relabelled by a fresh SCF at accuracy {accuracy}",
        settings,
        atoms.numbers,
        frames,
        t0,
        counter[0],
        extra_versions=("tblite",),
    )


def _build_molecule(name: str):
    import ase
    from ase.build import molecule
    from ase.collections import g2

    if name == "malonaldehyde":
        symbols, positions = zip(*_MALONALDEHYDE)
        return ase.Atoms(symbols=list(symbols), positions=np.array(positions), pbc=False)
    g2_name = _MOLECULE_ALIASES.get(name, name)
    if g2_name not in g2.names:
        raise ValueError(
            f"generate_molecule: unknown molecule {name!r}; use 'ethanol', 'malonaldehyde' "
            "or a name in ase.collections.g2 (e.g. 'CH3CHO', 'C6H6')"
        )
    atoms = molecule(g2_name)
    atoms.pbc = False
    return atoms


# --- internals ---------------------------------------------------------------------


def _connected(positions: np.ndarray, bond: float) -> bool:
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    adjacent = d < bond
    seen = np.zeros(len(positions), dtype=bool)
    seen[0] = True
    while True:
        grown = seen | adjacent[seen].any(axis=0)
        if (grown == seen).all():
            return bool(seen.all())
        seen = grown


def _settings(fn, local_vars: dict) -> dict:
    """The generator's arguments (defaults filled in, `progress` left out), as JSON."""
    sig = inspect.signature(fn)
    bound = sig.bind_partial(**{k: v for k, v in local_vars.items() if k in sig.parameters})
    bound.apply_defaults()
    out = {k: v for k, v in bound.arguments.items() if k != "progress"}
    return json.loads(json.dumps(out))


def _positive(**values) -> None:
    for name, v in values.items():
        check_positive(v, name)


def _non_negative(**values) -> None:
    for name, v in values.items():
        check_positive(v, name, allow_zero=True)


def _at_least(lo: int, **values) -> None:
    """Integer counts (strides, sizes) of at least `lo`."""
    for name, v in values.items():
        if isinstance(v, bool) or not v >= lo:
            raise ValueError(f"{name} must be >= {lo}, got {v!r}")


def _count_calls(calc) -> list[int]:
    """Counts the calculator's evaluations (one label = one energy+forces call)."""
    counter = [0]
    calculate = calc.calculate

    def counted(*args, **kwargs):
        counter[0] += 1
        return calculate(*args, **kwargs)

    calc.calculate = counted
    return counter


def _record(frames: dict, atoms, label=None) -> None:
    periodic = bool(atoms.pbc.all())
    if label is None:
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    else:
        energy, forces = label(atoms)
    frames["positions"].append(atoms.get_positions(wrap=periodic))
    frames["energies"].append(float(energy))
    frames["forces"].append(np.array(forces))
    if periodic:
        frames.setdefault("cells", []).append(np.array(atoms.cell[:]))


def _langevin_frames(
    atoms,
    n_frames: int,
    *,
    temperature_K,
    timestep_fs,
    friction_per_fs,
    stride,
    equilibrate_steps,
    rng,
    progress,
    desc,
    label=None,
) -> dict:
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

    thermalize_momenta(atoms, temperature_K, rng=rng)
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    dyn = Langevin(
        atoms,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )
    frames = {"positions": [], "energies": [], "forces": []}
    bar = None
    if progress:
        from .._progress import progress_bar

        bar = progress_bar(equilibrate_steps + n_frames * stride, desc=desc, unit="step")
    try:
        done = 0
        while done < equilibrate_steps:
            chunk = min(max(stride, 100), equilibrate_steps - done)
            dyn.run(chunk)
            done += chunk
            if bar is not None:
                bar.update(chunk)
        for _ in range(n_frames):
            dyn.run(stride)
            _record(frames, atoms, label)
            if bar is not None:
                bar.update(stride)
    finally:
        if bar is not None:
            bar.close()
    return frames


def _versions(extra: Sequence[str] = ()) -> dict[str, str]:
    out = {}
    for name in ("diffsim", "ase", "numpy", *extra):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def _finish(
    generator,
    system,
    method,
    sampling,
    settings,
    numbers,
    frames,
    t0,
    calls,
    extra_versions=(),
) -> Dataset:
    seconds = time.perf_counter() - t0
    info = {
        "generator": generator,
        "system": system,
        "method": method,
        "sampling": sampling,
        "settings": settings,
        "units": _UNITS,
        "versions": _versions(extra_versions),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "generation_time_s": round(seconds, 3),
        "label_calls": calls,
        "seconds_per_label": seconds / max(calls, 1),
    }
    cells = frames.get("cells")
    return Dataset(
        np.asarray(numbers),
        np.stack(frames["positions"]),
        np.asarray(frames["energies"], dtype=np.float64),
        np.stack(frames["forces"]),
        np.stack(cells) if cells else None,
        info,
    )
