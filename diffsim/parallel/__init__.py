"""Scale-out on JAX's own distributed runtime: device meshes, batches sharded across them,
and several processes joined by `jax.distributed`.

A batch (an ensemble of initial conditions, of controls, of MD replicas, of training
examples) is split along its leading axis across a one-axis device mesh; the compiler
partitions the computation and inserts the collectives. `diffsim.fit` trains
data-parallel under `use_mesh(mesh)` (or `fit(..., mesh=mesh)`): the batch sharded,
parameters replicated, gradients averaged by the compiler's all-reduce.

On a CPU, several devices need `XLA_FLAGS=--xla_force_host_platform_device_count=N` set
before JAX starts its backend (`prepare_devices(N)` does it; `diffsim run --devices N`
calls it). Several processes: `initialize()` from `DIFFSIM_COORDINATOR`,
`DIFFSIM_NUM_PROCESSES`, `DIFFSIM_PROCESS_ID` (CPU collectives over gloo).
"""

from ._distributed import (
    DistributedConfig as DistributedConfig,
    distributed_config as distributed_config,
    initialize as initialize,
    prepare_devices as prepare_devices,
)
from ._mesh import (
    BATCH as BATCH,
    batch_sharding as batch_sharding,
    current_mesh as current_mesh,
    gather as gather,
    make_mesh as make_mesh,
    replicate as replicate,
    shard_batch as shard_batch,
    shard_vmap as shard_vmap,
    use_mesh as use_mesh,
)
