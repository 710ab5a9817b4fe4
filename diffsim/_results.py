"""A short, readable `repr` for result tuples: arrays by dtype and shape, scalars by value."""

from __future__ import annotations

from typing import Any

import numpy as np


def _short(value: Any) -> str:
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        if shape == () or int(np.prod(shape)) == 1:
            try:
                item = np.asarray(value).reshape(()).item()
            except Exception:  # a tracer: no value to show
                return f"{np.dtype(dtype).name}[]"
            return f"{item:.6g}" if isinstance(item, float) else repr(item)
        return f"{np.dtype(dtype).name}{list(shape)}"
    if isinstance(value, list):
        return f"[{len(value)} items]"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int | bool | str) or value is None:
        return repr(value)
    return f"{type(value).__name__}(...)"


def result_repr(self) -> str:
    """`Name(field=value, ...)` with arrays shown as `float64[100, 4]`."""
    fields = ", ".join(f"{name}={_short(getattr(self, name))}" for name in self._fields)
    return f"{type(self).__name__}({fields})"
