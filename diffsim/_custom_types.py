"""Type aliases shared across diffsim (jaxtyping shapes in signatures)."""

from typing import Any

from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, PyTree, Shaped

Scalar = Float[Array, ""]
RealScalarLike = float | int | Scalar

__all__ = [
    "Any",
    "Array",
    "ArrayLike",
    "Float",
    "Int",
    "PRNGKeyArray",
    "PyTree",
    "RealScalarLike",
    "Scalar",
    "Shaped",
]
