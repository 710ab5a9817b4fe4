"""Forward-mode automatic differentiation with dual numbers.

A `Dual` carries a value and a tangent (the directional derivative along a chosen
input direction); every operation propagates both at once, so one forward pass gives
one Jacobian-vector product. A full gradient of f: R^n -> R costs n passes, one per
basis direction; reverse mode (`grad`) costs one backward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class Dual:
    """A value and its tangent: a + b eps with eps^2 = 0."""

    __array_priority__ = 1000

    def __init__(self, value, tangent):
        self.value = np.asarray(value, dtype=np.float64)
        self.tangent = np.asarray(tangent, dtype=np.float64)

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)

    @staticmethod
    def _lift(o):
        return o if isinstance(o, Dual) else Dual(o, np.zeros_like(np.asarray(o, np.float64)))

    def __add__(self, o):
        o = self._lift(o)
        return Dual(self.value + o.value, self.tangent + o.tangent)

    def __sub__(self, o):
        o = self._lift(o)
        return Dual(self.value - o.value, self.tangent - o.tangent)

    def __mul__(self, o):
        o = self._lift(o)
        return Dual(self.value * o.value, self.tangent * o.value + self.value * o.tangent)

    def __truediv__(self, o):
        o = self._lift(o)
        return Dual(
            self.value / o.value,
            (self.tangent * o.value - self.value * o.tangent) / o.value**2,
        )

    def __pow__(self, p: float | int):
        if isinstance(p, Dual):
            raise TypeError("Dual ** Dual is not supported; write exp(b * log(a))")
        return Dual(self.value**p, p * self.value ** (p - 1) * self.tangent)

    def __neg__(self):
        return Dual(-self.value, -self.tangent)

    def __matmul__(self, o):
        o = self._lift(o)
        return Dual(self.value @ o.value, self.tangent @ o.value + self.value @ o.tangent)

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, o):
        return self._lift(o) - self

    def __rtruediv__(self, o):
        return self._lift(o) / self

    def __rmatmul__(self, o):
        return self._lift(o) @ self

    def exp(self):
        y = np.exp(self.value)
        return Dual(y, y * self.tangent)

    def log(self):
        return Dual(np.log(self.value), self.tangent / self.value)

    def sin(self):
        return Dual(np.sin(self.value), np.cos(self.value) * self.tangent)

    def cos(self):
        return Dual(np.cos(self.value), -np.sin(self.value) * self.tangent)

    def tanh(self):
        y = np.tanh(self.value)
        return Dual(y, (1 - y**2) * self.tangent)

    def sigmoid(self):
        y = 1 / (1 + np.exp(-self.value))
        return Dual(y, y * (1 - y) * self.tangent)

    def sum(self):
        return Dual(np.sum(self.value), np.sum(self.tangent))

    def __repr__(self):
        return f"Dual({self.value!r}, {self.tangent!r})"


def jvp(f: Callable, primals: tuple, tangents: tuple) -> tuple:
    """Gives `(f(*primals), J v)`: the value and the directional derivative, by dual numbers.

    **Arguments:**

    - `f`: written with arithmetic, `@` and `diffsim.autodiff`'s functions; returns one
      array or scalar.
    - `primals`, `tangents`: tuples of arrays of equal shapes.

    **Returns:** `(value, tangent)` as numpy arrays.

    **Raises:** `ValueError` if `primals` and `tangents` differ in length or shapes.

    **Example:**

    ```python
    y, dy = jvp(lambda x: sin(x) * x, (np.array(1.0),), (np.array(1.0),))
    ```
    """
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    for i, (p, t) in enumerate(zip(primals, tangents)):
        if np.shape(p) != np.shape(t):
            raise ValueError(f"jvp: primal {i} has shape {np.shape(p)}, tangent {np.shape(t)}")
    out = f(*(Dual(p, t) for p, t in zip(primals, tangents)))
    if not isinstance(out, Dual):
        return np.asarray(out), np.zeros_like(np.asarray(out, np.float64))
    return out.value, out.tangent


def forward_grad(f: Callable) -> Callable:
    """Gives the gradient of a scalar f: R^n -> R by n forward passes (one per basis vector).

    The cost of forward mode for a gradient: compare `grad`, one backward pass.
    """

    def g(x):
        x = np.asarray(x, np.float64)
        basis = np.eye(x.size).reshape(x.size, *x.shape)
        return np.array([jvp(f, (x,), (e,))[1] for e in basis]).reshape(x.shape)

    return g
