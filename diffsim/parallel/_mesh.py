"""A one-axis device mesh and the helpers that put a batch across it and bring it back."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

BATCH = "batch"
"""The name of the mesh axis that a batch is split along."""

_MESH: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar("diffsim_mesh", default=None)


def make_mesh(devices: int | Sequence[Any] | None = None) -> Mesh:
    """Gives a one-axis mesh (axis `BATCH`) over `devices`.

    **Arguments:**

    - `devices`: how many of `jax.devices()` to use (the first ones), or the devices
      themselves; `None`: all of them (of every process, when several are joined by
      `initialize`).

    **Returns:** a `jax.sharding.Mesh` of shape `(n,)` with axis name `"batch"` (axis type
    Auto: the compiler propagates shardings).

    **Raises:** `ValueError` when `devices` is below 1 or more than there are; on a CPU
    the message names `XLA_FLAGS=--xla_force_host_platform_device_count=N`, which must
    be set before JAX starts (`prepare_devices`).

    ```python
    mesh = diffsim.parallel.make_mesh(4)
    ```
    """
    available = jax.devices()
    if isinstance(devices, bool):
        raise ValueError(f"make_mesh: devices must be an int or a list of devices, got {devices}")
    if devices is None:
        chosen = list(available)
    elif isinstance(devices, int):
        if devices < 1:
            raise ValueError(f"make_mesh: devices must be >= 1, got {devices}")
        if devices > len(available):
            platform = available[0].platform
            hint = (
                f"; on the CPU set XLA_FLAGS=--xla_force_host_platform_device_count={devices} "
                "before JAX starts (diffsim.parallel.prepare_devices, or `diffsim run "
                "--devices N`, which sets it when JAX has not started yet)"
                if platform == "cpu"
                else ""
            )
            raise ValueError(
                f"make_mesh: devices={devices}, but only {len(available)} {platform} "
                f"device(s) are available{hint}"
            )
        chosen = list(available[:devices])
    else:
        chosen = list(devices)
        if not chosen:
            raise ValueError("make_mesh: devices is an empty sequence")
    return jax.make_mesh((len(chosen),), (BATCH,), axis_types=(AxisType.Auto,), devices=chosen)


@contextlib.contextmanager
def use_mesh(mesh: Mesh | None) -> Iterator[Mesh | None]:
    """Makes `mesh` the one `diffsim.fit` (and `current_mesh()`) uses inside the block.

    The runner enters it for `diffsim run --devices N`; `None` (or a one-device mesh)
    means no sharding. It does not change how `jax.jit` treats other code.
    """
    token = _MESH.set(mesh)
    try:
        yield mesh
    finally:
        _MESH.reset(token)


def current_mesh() -> Mesh | None:
    """Gives the mesh set by the innermost `use_mesh` block, or `None`."""
    return _MESH.get()


def _check_divides(tree: Any, n: int, what: str) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        shape = np.shape(leaf)
        if len(shape) == 0 or shape[0] % n:
            raise ValueError(
                f"{what}: the leading (batch) axis of every array must divide the {n} devices; "
                f"got shape {shape} at {jax.tree_util.keystr(path) or 'the root'} (pad the "
                "batch to a multiple, or use a device count that divides it)"
            )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding that splits an array's leading axis across `mesh`."""
    return NamedSharding(mesh, PartitionSpec(BATCH))


def shard_batch(tree: Any, mesh: Mesh) -> Any:
    """Gives `tree` with every array split along its leading axis across `mesh`.

    **Arguments:**

    - `tree`: a pytree of arrays, each with the same meaning of axis 0 (the batch); with
      several processes every process passes the same global values.
    - `mesh`: from `make_mesh`.

    **Returns:** the same pytree of global `jax.Array`s, sharded `P("batch")`.

    **Raises:** `ValueError` naming the array whose leading axis the device count does
    not divide (no silent padding: pad the batch yourself, and mask the padding out of
    any mean).

    ```python
    y0 = diffsim.parallel.shard_batch(jnp.ones((4096, 3)), mesh)
    ```
    """
    _check_divides(tree, mesh.size, "shard_batch")
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: _put(x, sharding), tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Gives `tree` with every array replicated on every device of `mesh` (parameters)."""
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda x: _put(x, sharding), tree)


def _put(x, sharding: NamedSharding):
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    host = np.asarray(x)  # each process holds the global value; it keeps its own shards
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def gather(tree: Any) -> Any:
    """Gives `tree` as numpy arrays on the host, whole (every shard, of every process)."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return jax.tree.map(
        lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)), tree
    )


def shard_vmap(fn: Callable, mesh: Mesh) -> Callable:
    """Gives a jitted `fn` mapped over the leading axis of every argument, one shard per device.

    Each device runs `jax.vmap(fn)` on its own slice of the batch, with no communication
    (a `shard_map` body): the per-shard computation is exactly what a single device would
    do on that slice, so the results equal the unsharded `jax.vmap(fn)` up to the
    reduction order of any batched matrix product.

    **Arguments:**

    - `fn`: a function of one example (arrays without the batch axis) to a pytree.
    - `mesh`: from `make_mesh`.

    **Returns:** `g(*batched_args)` with outputs sharded `P("batch")`; the arguments'
    leading axis must divide `mesh.size` (`ValueError` otherwise, at trace time).

    ```python
    final = shard_vmap(lambda y0: solve(f, y0, ts)[-1], mesh)(shard_batch(y0s, mesh))
    ```
    """
    spec = PartitionSpec(BATCH)
    # no collectives in the body; check_vma=False lets a scan carry mix per-shard values
    mapped = jax.shard_map(jax.vmap(fn), mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)

    @jax.jit
    def run(*args):
        _check_divides(args, mesh.size, "shard_vmap")
        return mapped(*args)

    return run
