"""Save and load pytrees atomically: a JSON header line, then equinox-serialised leaves.

No pickle: loading needs a template pytree of the same structure (`like`), as with
`eqx.tree_deserialise_leaves`. The header carries the SHA-256 and the length of the
payload, checked on every load, so a flipped byte or a truncated file is refused, never
loaded. Files get the user's umask, like every other file of a run.

With `keep_previous=True` the checkpoint it replaces is kept beside it as
`NAME.prev.SUFFIX` (moved, never rewritten), and `load_latest` falls back to it when the
latest one is corrupted.
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


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message is one line naming the file.

    `corrupted` is True for a file that is damaged (checksum, truncation, unreadable
    header) rather than one that does not match the expected pytree.
    """

    def __init__(self, message: str, *, corrupted: bool):
        super().__init__(message)
        self.corrupted = corrupted


def previous_path(path: str | os.PathLike) -> Path:
    """Where `save_checkpoint(path, ..., keep_previous=True)` keeps the checkpoint it replaced."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(
    path: str | os.PathLike, tree: Any, metadata: dict | None = None, *, keep_previous: bool = False
) -> Path:
    """Writes `tree` (any pytree of arrays) and JSON `metadata` to `path`, atomically.

    The file is a line `diffsim-checkpoint-v2 <sha256>`, a JSON line with the metadata,
    then the serialised leaves; the SHA-256 covers everything after the first line. It is
    written to a temporary name in the same folder, flushed to disk and renamed over
    `path`, so a crash leaves either the old checkpoint or the new one. With
    `keep_previous`, the old one is first moved to `previous_path(path)` (a crash between
    the two renames leaves the old one there and no latest: `load_latest` finds it).

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
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))
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

    **Raises:** `FileNotFoundError`; `CheckpointError` (a `ValueError`; one line naming the
    file) if the file is not a diffsim checkpoint, is corrupted or truncated (checksum), or
    does not match `like`.
    """
    path = Path(path)
    metadata, payload = _read(path)
    try:
        tree = eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
    except Exception as e:  # shape/dtype/structure mismatch
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: checkpoint does not match the expected pytree (was the config changed "
            f"since it was written?): {first}",
            corrupted=False,
        ) from None
    return tree, metadata


def load_latest(path: str | os.PathLike, like: Any) -> tuple[Any, dict, str | None]:
    """Loads the checkpoint at `path`, or the previous one kept beside it if `path` is
    corrupted or missing (see `save_checkpoint(keep_previous=True)`).

    **Returns:** `(tree, metadata, note)`: `note` is `None`, or one line saying that the
    previous checkpoint was used and why.

    **Raises:** `FileNotFoundError` if neither exists; `CheckpointError` if the latest does
    not match `like` (no fallback: the previous one would not either), or if both are
    corrupted.
    """
    path = Path(path)
    prev = previous_path(path)
    try:
        tree, meta = load_checkpoint(path, like)
        return tree, meta, None
    except FileNotFoundError:
        if not prev.exists():
            raise
        why = f"{path} is missing (interrupted between two renames)"
        original: CheckpointError | None = None
    except CheckpointError as e:
        if not e.corrupted or not prev.exists():
            raise
        why = str(e)
        original = e
    try:
        tree, meta = load_checkpoint(prev, like)
    except CheckpointError as e:
        if original is None:
            raise
        raise CheckpointError(
            f"{original}; the previous one is unusable too: {e}", corrupted=True
        ) from None
    return tree, meta, f"{why}; resuming from the previous checkpoint {prev.name} instead"


def read_metadata(path: str | os.PathLike) -> dict:
    """Gives the JSON metadata of a checkpoint (checksum verified) without loading arrays."""
    return _read(Path(path))[0]


def _read(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    first, _, rest = data.partition(b"\n")
    words = first.split(b" ")
    if len(words) == 2 and words[0] == _MAGIC.encode():
        if hashlib.sha256(rest).hexdigest().encode() != words[1]:
            raise CheckpointError(
                f"{path}: corrupted or truncated checkpoint (its checksum does not match)",
                corrupted=True,
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
        raise CheckpointError(
            f"{path}: not a diffsim checkpoint (unreadable header)", corrupted=True
        ) from None
    return header["metadata"], payload


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()
