"""Data-set files: `.npz` (NumPy arrays, the info as JSON; read without pickle) and
`.extxyz` (full float precision, readable by `ase.io.read`), written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ._dataset import Dataset, _symbols

_SUFFIXES = (".npz", ".extxyz")
_INFO_KEY = "diffsim_dataset"
_NPZ_FORMAT = "diffsim.Dataset/1"


def save_dataset(path: str | os.PathLike, ds: Dataset) -> Path:
    """Writes `ds` to `path` (`.npz` or `.extxyz`) atomically; gives the path.

    `.npz` holds the arrays and `info` as a JSON string; `.extxyz` one frame per block,
    floats written with full precision (round trips exactly), the info JSON in the first
    frame's `diffsim_dataset` key. The file appears complete or not at all.

    **Raises:** `ValueError` for another suffix; `FileNotFoundError` if the directory does
    not exist.
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"save_dataset: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if suffix == ".npz":
                _write_npz(f, ds)
            else:
                f.write(_extxyz_text(ds).encode())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Reads a dataset written by `save_dataset` (or any extxyz file whose frames have
    the same atoms with energies and forces).

    **Raises:** `FileNotFoundError` for a missing file; `ValueError` naming the file for
    an unsupported suffix or malformed content.
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_dataset: no such file {path}")
    try:
        return _read_npz(path) if suffix == ".npz" else _read_extxyz(path)
    except _Malformed as e:
        raise ValueError(f"{path}: {e}") from None
    except ValueError as e:  # Dataset validation of the content read
        raise ValueError(f"{path}: {e}") from e


class _Malformed(Exception):
    pass


def _suffix(path: Path) -> str:
    if path.suffix not in _SUFFIXES:
        raise ValueError(
            f"{path}: unsupported dataset suffix {path.suffix!r} (use {' or '.join(_SUFFIXES)})"
        )
    return path.suffix


def _write_npz(f, ds: Dataset) -> None:
    arrays = {
        "format": np.array(_NPZ_FORMAT),
        "numbers": ds.numbers,
        "positions": ds.positions,
        "energies": ds.energies,
        "forces": ds.forces,
        "info": np.array(json.dumps(ds.info)),
    }
    if ds.cells is not None:
        arrays["cells"] = ds.cells
    np.savez(f, allow_pickle=False, **arrays)


def _read_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"numbers", "positions", "energies", "forces", "info"} - set(z.files)
            if missing:
                raise _Malformed(f"not a diffsim dataset (missing arrays {sorted(missing)})")
            if "format" in z.files and str(z["format"]) != _NPZ_FORMAT:
                raise _Malformed(f"unknown dataset format {str(z['format'])!r}")
            arrays = {k: z[k] for k in z.files}
    except _Malformed:
        raise
    except Exception as e:  # zipfile/format errors surface as many types
        raise _Malformed(f"cannot read as .npz: {type(e).__name__}: {e}") from None
    try:
        info = json.loads(str(arrays["info"]))
    except json.JSONDecodeError as e:
        raise _Malformed(f"malformed info JSON: {e}") from None
    return Dataset(
        arrays["numbers"],
        arrays["positions"],
        arrays["energies"],
        arrays["forces"],
        arrays.get("cells"),
        info,
    )


def _escape(text: str) -> str:
    # ASE's extxyz reader takes a backslash to mean "next character verbatim".
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _extxyz_text(ds: Dataset) -> str:
    # Written here rather than by ase.io.write, which rounds positions and forces to
    # 8 decimals; %.17g round-trips float64 exactly and ase.io.read parses it.
    symbols = _symbols(ds.numbers)
    width = max(len(s) for s in symbols)
    info = _escape(json.dumps(ds.info, separators=(",", ":")))
    lines = []
    for b in range(len(ds)):
        header = []
        if ds.cells is not None:
            header.append('Lattice="' + " ".join(repr(float(x)) for x in ds.cells[b].ravel()) + '"')
        header.append("Properties=species:S:1:pos:R:3:forces:R:3")
        header.append(f"energy={float(ds.energies[b])!r}")
        header.append('pbc="T T T"' if ds.cells is not None else 'pbc="F F F"')
        if b == 0:
            header.append(f'{_INFO_KEY}="{info}"')
        lines.append(str(ds.n_atoms))
        lines.append(" ".join(header))
        rows = np.concatenate([ds.positions[b], ds.forces[b]], axis=1)
        for s, row in zip(symbols, rows):
            lines.append(s.ljust(width) + " " + " ".join(f"{x:.17g}" for x in row))
    return "\n".join(lines) + "\n"


def _read_extxyz(path: Path) -> Dataset:
    import ase.io

    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as e:  # ASE's parser raises many types for a malformed file
        raise _Malformed(f"malformed extxyz: {type(e).__name__}: {e}") from None
    if not isinstance(frames, list):  # index=":" gives a list; anything else is malformed
        frames = [frames]
    if not frames or not all(isinstance(a, ase.Atoms) for a in frames):
        raise _Malformed("no frames")
    numbers = frames[0].numbers
    positions, energies, forces, cells = [], [], [], []
    periodic = bool(frames[0].pbc.all())
    for k, atoms in enumerate(frames):
        if not np.array_equal(atoms.numbers, numbers):
            raise _Malformed(f"frame {k} has different atoms from frame 0")
        pbc = np.asarray(atoms.pbc)
        if pbc.any() and not pbc.all():
            raise _Malformed(f"frame {k} has mixed periodicity pbc={pbc.tolist()}")
        if bool(pbc.all()) != periodic:
            raise _Malformed(f"frame {k} differs from frame 0 in periodicity")
        results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
        if "energy" not in results or "forces" not in results:
            raise _Malformed(f"frame {k} has no energy and forces")
        positions.append(atoms.positions)
        energies.append(results["energy"])
        forces.append(results["forces"])
        if periodic:
            cells.append(np.asarray(atoms.cell))
    raw = frames[0].info.get(_INFO_KEY, {})
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise _Malformed(f"malformed {_INFO_KEY} JSON: {e}") from None
    if not isinstance(raw, dict):
        raise _Malformed(f"{_INFO_KEY} is not a JSON object")
    return Dataset(
        numbers,
        np.stack(positions),
        np.asarray(energies, dtype=np.float64),
        np.stack(forces),
        np.stack(cells) if periodic else None,
        raw,
    )
