"""diffsim: differentiable physics and control in JAX.

Every simulator is a step run by one `rollout`; every gradient comes from `jax.grad`
through it, with a selectable strategy (`BPTT`, `Checkpointed`, `DiscreteAdjoint`,
`Reversible`).
"""

from ._checkpoint import (
    CheckpointError as CheckpointError,
    load_checkpoint as load_checkpoint,
    load_latest as load_latest,
    save_checkpoint as save_checkpoint,
)
from ._memory import MemoryUsage as MemoryUsage, memory_usage as memory_usage
from ._rollout import (
    BPTT as BPTT,
    AbstractGradient as AbstractGradient,
    Checkpointed as Checkpointed,
    DiscreteAdjoint as DiscreteAdjoint,
    ForwardSensitivity as ForwardSensitivity,
    Reversible as Reversible,
    Truncated as Truncated,
    costates as costates,
    rollout as rollout,
)
from ._train import FitResult as FitResult, fit as fit, load_params as load_params

__version__ = "0.1.0"
