"""Save and load pytrees atomically: a JSON header line, then equinox-serialised leaves.

No pickle: loading needs a template pytree of the same structure (`like`), as with
`eqx.tree_deserialise_leaves`.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx

_MAGIC = "diffsim-checkpoint-v1"


def save_checkpoint(path: str | os.PathLike, tree: Any, metadata: dict | None = None) -> Path:
    """Writes `tree` (any pytree of arrays) and JSON `metadata` to `path`, atomically.

    The file is written to a temporary name in the same folder, flushed to disk and
    renamed over `path`, so a crash leaves either the old checkpoint or the new one.

    **Returns:** the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"format": _MAGIC, "metadata": metadata or {}}, sort_keys=True)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header.encode() + b"\n")
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, like: Any) -> tuple[Any, dict]:
    """Reads a checkpoint written by `save_checkpoint`.

    **Arguments:**
    - `path`: the checkpoint file.
    - `like`: a pytree with the structure, shapes and dtypes of the saved one.

    **Returns:** `(tree, metadata)`.

    **Raises:** `FileNotFoundError`; `ValueError` if the file is not a diffsim
    checkpoint or does not match `like`.
    """
    path = Path(path)
    with open(path, "rb") as f:
        line = f.readline()
        try:
            header = json.loads(line)
            if header.get("format") != _MAGIC:
                raise ValueError
        except (ValueError, AttributeError):
            raise ValueError(f"{path}: not a diffsim checkpoint") from None
        try:
            tree = eqx.tree_deserialise_leaves(f, like)
        except Exception as e:  # shape/dtype/structure mismatch
            raise ValueError(f"{path}: checkpoint does not match the expected pytree: {e}") from e
    return tree, header["metadata"]


def read_metadata(path: str | os.PathLike) -> dict:
    """Gives the JSON metadata of a checkpoint without loading its arrays."""
    with open(path, "rb") as f:
        header = json.loads(f.readline())
    if header.get("format") != _MAGIC:
        raise ValueError(f"{path}: not a diffsim checkpoint")
    return header["metadata"]
