"""Argument and value checks shared by every domain, each written once.

Three layers, as in diffrax: a concrete value (a Python number, a NumPy array, a JAX array
outside `jit`) that is wrong raises `ValueError` naming the argument and the value; a
traced value (inside `jit`, `vmap`, `grad`) is checked at run time by `eqx.error_if`; a
caller who prefers a flag reads one (neighbour-list overflow, solver results).

Also here: the two pytree fixes that every custom VJP needs (strong types for weak-typed
floats, no tangents on integer leaves).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np


def concrete(x: Any) -> np.ndarray | None:
    """`x` as a NumPy array, or `None` when it is traced (inside `jit`, `vmap`, `grad`)."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def is_concrete(tree: Any) -> bool:
    """True when no array leaf of `tree` is traced."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jtu.tree_leaves(tree))


def _show(a: np.ndarray) -> str:
    return repr(a.item()) if a.ndim == 0 else f"{a.tolist()}" if a.size <= 8 else f"array {a.shape}"


def check_positive(x: Any, name: str, *, allow_zero: bool = False, scalar: bool = False) -> Any:
    """Gives `x` after checking that it is finite and > 0 (>= 0 with `allow_zero`).

    **Arguments:** `x` (a number or array, concrete or traced); `name` (how the error names
    it, e.g. `"solve: dt"`); `allow_zero`; `scalar` (also require a scalar).

    **Raises:** `ValueError` for a concrete bad value; under `jit`, `eqx.error_if` raises
    at run time.
    """
    bound = ">= 0" if allow_zero else "> 0"
    a = concrete(x)
    if a is not None:
        if scalar and a.ndim != 0:
            raise ValueError(f"{name} must be a scalar, got shape {a.shape}")
        if a.dtype == object or not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{name} must be a number, got {x!r}")
        ok = np.isfinite(a) & ((a >= 0) if allow_zero else (a > 0))
        if not np.all(ok):
            raise ValueError(f"{name} must be finite and {bound}, got {_show(a)}")
        return x
    bad = ~(jnp.isfinite(x) & ((x >= 0) if allow_zero else (x > 0)))
    return eqx.error_if(x, jnp.any(bad), f"{name} must be finite and {bound}")


def check_finite(tree: Any, name: str, *, nan_only: bool = False) -> Any:
    """Gives `tree` after checking that every floating-point leaf is finite (no NaN, no inf;
    only no NaN with `nan_only`).

    **Raises:** `ValueError` naming `name` and the first bad leaf's shape for concrete
    values; `eqx.error_if` under `jit`.
    """

    def check(a):
        if not (
            isinstance(a, jax.Array | np.ndarray | float)
            and jnp.issubdtype(jnp.result_type(a), jnp.inexact)
        ):
            return a
        v = concrete(a)
        if v is not None:
            if np.any(np.isnan(v)) or (not nan_only and not np.all(np.isfinite(v))):
                kind = "NaN" if np.any(np.isnan(v)) else "inf"
                raise ValueError(f"{name} contains {kind} (shape {v.shape}); give finite values")
            return a
        bad = jnp.isnan(a) if nan_only else ~jnp.isfinite(a)
        return eqx.error_if(
            a, jnp.any(bad), f"{name} contains {'NaN' if nan_only else 'NaN or inf'}"
        )

    return jtu.tree_map(check, tree)


def strong_types(tree: Any) -> Any:
    """`tree` with weak-typed float arrays made strongly typed.

    A Python float traced by `jax.grad` is weak-typed, and `eqx.filter_custom_vjp` drops
    the cotangents of weak-typed leaves.
    """
    return jtu.tree_map(
        lambda c: (
            jnp.array(c, dtype=c.dtype)
            if eqx.is_inexact_array(c) and getattr(c, "weak_type", False)
            else c
        ),
        tree,
    )


def stop_int_gradients(tree: Any) -> Any:
    """`stop_gradient` on the non-float array leaves of `tree` (indices, counts, flags).

    They carry no gradient, but under `jax.grad` they can still arrive as perturbed
    tracers, which custom VJPs reject.
    """
    return jtu.tree_map(
        lambda x: (
            jax.lax.stop_gradient(x) if eqx.is_array(x) and not eqx.is_inexact_array(x) else x
        ),
        tree,
    )
