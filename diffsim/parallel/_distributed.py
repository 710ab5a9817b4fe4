"""Several processes on JAX's distributed runtime, and the XLA flags that must precede it."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """Where a process finds the others: coordinator `host:port`, count and own index."""

    coordinator: str
    num_processes: int
    process_id: int
    local_devices: int | None = None
    """Forced CPU devices of this process (`None`: leave XLA_FLAGS alone)."""


def _int(value, name: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"initialize: {name} must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"initialize: {name} must be an integer, got {value!r}") from None


def distributed_config(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_devices: int | None = None,
    env: Mapping[str, str] | None = None,
) -> DistributedConfig | None:
    """Gives the checked settings of `initialize` (arguments first, then the environment).

    Missing arguments come from `DIFFSIM_COORDINATOR`, `DIFFSIM_NUM_PROCESSES`,
    `DIFFSIM_PROCESS_ID` and `DIFFSIM_LOCAL_DEVICES`. Gives `None` when neither names a
    coordinator (a single process).

    **Raises:** `ValueError` naming the setting: a coordinator not of the form
    `host:port`, a process count below 1, a process id outside `0 .. count - 1`, a
    coordinator without the count and id (or the reverse).
    """
    env = os.environ if env is None else env
    coordinator = coordinator if coordinator is not None else env.get("DIFFSIM_COORDINATOR")
    if num_processes is None and env.get("DIFFSIM_NUM_PROCESSES"):
        num_processes = _int(env["DIFFSIM_NUM_PROCESSES"], "DIFFSIM_NUM_PROCESSES")
    if process_id is None and env.get("DIFFSIM_PROCESS_ID"):
        process_id = _int(env["DIFFSIM_PROCESS_ID"], "DIFFSIM_PROCESS_ID")
    if local_devices is None and env.get("DIFFSIM_LOCAL_DEVICES"):
        local_devices = _int(env["DIFFSIM_LOCAL_DEVICES"], "DIFFSIM_LOCAL_DEVICES")
    if not coordinator:
        if num_processes is not None or process_id is not None:
            raise ValueError(
                "initialize: num_processes / process_id given without a coordinator "
                "(DIFFSIM_COORDINATOR=host:port)"
            )
        return None
    if not re.fullmatch(r"\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}", coordinator):
        raise ValueError(f"initialize: coordinator must be host:port, got {coordinator!r}")
    if num_processes is None or process_id is None:
        raise ValueError(
            f"initialize: coordinator {coordinator!r} needs num_processes and process_id "
            "(DIFFSIM_NUM_PROCESSES, DIFFSIM_PROCESS_ID)"
        )
    num_processes = _int(num_processes, "num_processes")
    process_id = _int(process_id, "process_id")
    if num_processes < 1:
        raise ValueError(f"initialize: num_processes must be >= 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"initialize: process_id must be in 0 .. {num_processes - 1}, got {process_id}"
        )
    if local_devices is not None:
        local_devices = _int(local_devices, "local_devices")
        if local_devices < 1:
            raise ValueError(f"initialize: local_devices must be >= 1, got {local_devices}")
    return DistributedConfig(coordinator, num_processes, process_id, local_devices)


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_devices: int | None = None,
    env: Mapping[str, str] | None = None,
) -> DistributedConfig | None:
    """Joins this process to the others through `jax.distributed.initialize`.

    Call it before any JAX computation. On the CPU the processes exchange data over
    gloo (`jax_cpu_collectives_implementation="gloo"`, set here; the default of jax
    0.10.2 too), so two processes on one machine over loopback behave as two hosts.

    **Arguments:** `coordinator` (`host:port` of process 0, which listens there),
    `num_processes`, `process_id` (0-based), `local_devices` (CPU devices forced in this
    process, through `prepare_devices`); each missing one is read from
    `DIFFSIM_COORDINATOR`, `DIFFSIM_NUM_PROCESSES`, `DIFFSIM_PROCESS_ID`,
    `DIFFSIM_LOCAL_DEVICES` in `env` (default `os.environ`).

    **Returns:** the settings used, or `None` when no coordinator is named (a single
    process: nothing is done).

    **Raises:** `ValueError` for bad settings (see `distributed_config`), and what
    `jax.distributed.initialize` raises (already initialised, coordinator unreachable
    within its timeout).

    ```sh
    DIFFSIM_COORDINATOR=127.0.0.1:12355 DIFFSIM_NUM_PROCESSES=2 DIFFSIM_PROCESS_ID=0 python a.py
    ```
    """
    settings = distributed_config(
        coordinator, num_processes, process_id, local_devices=local_devices, env=env
    )
    if settings is None:
        return None
    if settings.local_devices is not None:
        prepare_devices(settings.local_devices)
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=settings.coordinator,
        num_processes=settings.num_processes,
        process_id=settings.process_id,
    )
    return settings


def prepare_devices(devices: int | None = None, *, deterministic: bool = False) -> None:
    """Sets `XLA_FLAGS` for `devices` forced CPU devices (and deterministic GPU ops).

    XLA reads its flags once, when JAX starts its backend (the first computation or
    `jax.devices()`), so call this before that; importing jax is fine. It replaces a
    device count already in `XLA_FLAGS` and keeps every other flag. On a GPU or TPU host
    the CPU device count is harmless; the accelerators are what `jax.devices()` gives.

    **Arguments:**

    - `devices`: CPU devices to force (`None`: leave the count alone).
    - `deterministic`: add `--xla_gpu_deterministic_ops=true` (GPU reductions and
      scatters in a fixed order, so a resumed training run is bitwise equal to an
      uninterrupted one; the CPU backend is deterministic already and ignores it).

    **Raises:** `ValueError` for `devices` below 1. A backend already started with another
    count is caught later by `make_mesh` (its message names the flag).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if devices is not None:
        if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
            raise ValueError(f"prepare_devices: devices must be an int >= 1, got {devices!r}")
        flags = re.sub(rf"{DEVICE_COUNT_FLAG}=\S*", "", flags)
        flags = f"{flags} {DEVICE_COUNT_FLAG}={devices}"
    if deterministic and "xla_gpu_deterministic_ops" not in flags:
        flags = f"{flags} {DETERMINISTIC_FLAG}"
    os.environ["XLA_FLAGS"] = " ".join(flags.split())
