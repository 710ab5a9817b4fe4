"""Elementwise functions that work on tape nodes, dual numbers and plain arrays alike."""

from __future__ import annotations

import numpy as np


def _dispatch(name, numpy_fn):
    def fn(x):
        method = getattr(x, name, None)
        if method is not None and not isinstance(x, np.ndarray | float | int):
            return method()
        return numpy_fn(x)

    fn.__name__ = name
    fn.__doc__ = f"Gives {name}(x) for a `Var` (recorded on its tape), a `Dual` or an array."
    return fn


exp = _dispatch("exp", np.exp)
log = _dispatch("log", np.log)
sin = _dispatch("sin", np.sin)
cos = _dispatch("cos", np.cos)
tanh = _dispatch("tanh", np.tanh)
sigmoid = _dispatch("sigmoid", lambda x: 1 / (1 + np.exp(-np.asarray(x))))
sum = _dispatch("sum", np.sum)  # noqa: A001
