"""Save and load pytrees atomically: a JSON header line, then equinox-serialised leaves.

No pickle: loading needs a template pytree of the same structure (`like`), as with
`eqx.tree_deserialise_leaves`. The header carries the SHA-256 and the length of the
payload, checked on every load, so a flipped byte or a truncated file is refused, never
loaded. Files get the user's umask, like every other file of a run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx

_MAGIC = "diffsim-checkpoint-v2"
_MAGIC_V1 = "diffsim-checkpoint-v1"  # no checksum; still readable


def save_checkpoint(path: str | os.PathLike, tree: Any, metadata: dict | None = None) -> Path:
    """Writes `tree` (any pytree of arrays) and JSON `metadata` to `path`, atomically.

    The file is a line `diffsim-checkpoint-v2 <sha256>`, a JSON line with the metadata,
    then the serialised leaves; the SHA-256 covers everything after the first line. It is
    written to a temporary name in the same folder, flushed to disk and renamed over
    `path`, so a crash leaves either the old checkpoint or the new one.

    **Returns:** the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    body = json.dumps({"metadata": metadata or {}}, sort_keys=True).encode() + b"\n"
    body += buffer.getvalue()
    first = f"{_MAGIC} {hashlib.sha256(body).hexdigest()}\n".encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(first + body)
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

    **Raises:** `FileNotFoundError`; `ValueError` (one line naming the file) if the file
    is not a diffsim checkpoint, is corrupted or truncated (checksum), or does not match
    `like`.
    """
    path = Path(path)
    metadata, payload = _read(path)
    try:
        tree = eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
    except Exception as e:  # shape/dtype/structure mismatch
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path}: checkpoint does not match the expected pytree (was the config changed "
            f"since it was written?): {first}"
        ) from None
    return tree, metadata


def read_metadata(path: str | os.PathLike) -> dict:
    """Gives the JSON metadata of a checkpoint (checksum verified) without loading arrays."""
    return _read(Path(path))[0]


def _read(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    first, _, rest = data.partition(b"\n")
    words = first.split(b" ")
    if len(words) == 2 and words[0] == _MAGIC.encode():
        if hashlib.sha256(rest).hexdigest().encode() != words[1]:
            raise ValueError(
                f"{path}: corrupted or truncated checkpoint (its checksum does not match)"
            )
        line, _, payload = rest.partition(b"\n")
    else:  # version 1: a JSON header line, no checksum
        line, payload = first, rest
    try:
        header = json.loads(line)
        if not isinstance(header, dict) or not isinstance(header.get("metadata"), dict):
            raise ValueError
        if len(words) != 2 and header.get("format") != _MAGIC_V1:
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{path}: not a diffsim checkpoint (unreadable header)") from None
    return header["metadata"], payload


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()
