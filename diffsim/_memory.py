"""Peak working memory of a compiled computation, from XLA's memory analysis."""

from __future__ import annotations

import dataclasses

import jax


@dataclasses.dataclass(frozen=True)
class MemoryUsage:
    """Bytes reported by the compiled executable's memory analysis."""

    temp: int
    argument: int
    output: int
    generated_code: int

    @property
    def working(self) -> int:
        """Temporary buffers: what the computation needs beyond its inputs and outputs."""
        return self.temp


def memory_usage(fn, *args, **kwargs) -> MemoryUsage:
    """Gives the memory XLA plans for `jax.jit(fn)(*args, **kwargs)`, without running it.

    **Example:** `memory_usage(jax.grad(loss), params).temp` is the working memory of
    the gradient in bytes.
    """
    compiled = jax.jit(fn).lower(*args, **kwargs).compile()
    stats = compiled.memory_analysis()
    if stats is None:  # some backends do not report
        raise RuntimeError("memory_usage: this backend gives no memory analysis")
    return MemoryUsage(
        temp=int(stats.temp_size_in_bytes),
        argument=int(stats.argument_size_in_bytes),
        output=int(stats.output_size_in_bytes),
        generated_code=int(stats.generated_code_size_in_bytes),
    )
