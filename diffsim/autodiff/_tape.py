"""A reverse-mode automatic differentiation on a tape, small enough to read in one sitting.

Every operation on a `Var` computes its value with numpy and appends one record to the
tape: the output node and, for each input node, a function that maps the output's
cotangent to that input's share (its vector-Jacobian product). Records are appended in
the order they are computed, so the tape is already a topological order; the backward
pass walks it in reverse, and where a node feeds several later nodes (paths reconverge)
the shares arriving from each of them are summed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class Tape:
    """The list of recorded operations: `(node, [(parent, vjp), ...])` in execution order."""

    def __init__(self):
        self.records: list[tuple[Var, list[tuple[Var, Callable]]]] = []

    def backward(self, output: Var) -> dict[int, np.ndarray]:
        """Gives d output / d node for every node on the tape, keyed by `id(node)`."""
        if np.ndim(output.value) != 0:
            raise ValueError(
                f"Tape.backward: output must be a scalar, got shape {np.shape(output.value)}"
            )
        grads = {id(output): np.ones_like(output.value)}
        for node, parents in reversed(self.records):
            g = grads.get(id(node))
            if g is None:  # the output does not depend on this node
                continue
            for parent, vjp in parents:
                share = _unbroadcast(vjp(g), np.shape(parent.value))
                # Paths reconverge here: add, do not overwrite.
                grads[id(parent)] = grads[id(parent)] + share if id(parent) in grads else share
        return grads


class Var:
    """A node on a tape: a numpy value (scalar or array) that records what is done to it."""

    __array_priority__ = 1000  # numpy arrays defer to Var's operators

    def __init__(self, value, tape: Tape, parents: list[tuple[Var, Callable]] | None = None):
        self.value = np.asarray(value, dtype=np.float64)
        self.tape = tape
        tape.records.append((self, parents or []))

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)

    def _new(self, value, *parents):
        return Var(value, self.tape, list(parents))

    def _lift(self, other):
        return other if isinstance(other, Var) else Var(other, self.tape)

    # arithmetic: each line is a value and the vjp of each input
    def __add__(self, o):
        o = self._lift(o)
        return self._new(self.value + o.value, (self, lambda g: g), (o, lambda g: g))

    def __sub__(self, o):
        o = self._lift(o)
        return self._new(self.value - o.value, (self, lambda g: g), (o, lambda g: -g))

    def __mul__(self, o):
        o = self._lift(o)
        a, b = self.value, o.value
        return self._new(a * b, (self, lambda g: g * b), (o, lambda g: g * a))

    def __truediv__(self, o):
        o = self._lift(o)
        a, b = self.value, o.value
        return self._new(a / b, (self, lambda g: g / b), (o, lambda g: -g * a / b**2))

    def __pow__(self, p: float | int):
        if isinstance(p, Var):
            raise TypeError("Var ** Var is not supported; write exp(b * log(a))")
        a = self.value
        return self._new(a**p, (self, lambda g: g * p * a ** (p - 1)))

    def __neg__(self):
        return self._new(-self.value, (self, lambda g: -g))

    def __matmul__(self, o):
        o = self._lift(o)
        if self.ndim not in (1, 2) or o.ndim not in (1, 2):
            raise ValueError(f"Var @: operands must be 1-D or 2-D, got {self.shape} @ {o.shape}")
        vjp_a, vjp_b = _matmul_vjps(self.value, o.value)
        return self._new(self.value @ o.value, (self, vjp_a), (o, vjp_b))

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, o):
        return self._lift(o) - self

    def __rtruediv__(self, o):
        return self._lift(o) / self

    def __rmatmul__(self, o):
        return self._lift(o) @ self

    # elementwise functions, called through `exp(x)` etc. below
    def exp(self):
        y = np.exp(self.value)
        return self._new(y, (self, lambda g: g * y))

    def log(self):
        a = self.value
        return self._new(np.log(a), (self, lambda g: g / a))

    def sin(self):
        a = self.value
        return self._new(np.sin(a), (self, lambda g: g * np.cos(a)))

    def cos(self):
        a = self.value
        return self._new(np.cos(a), (self, lambda g: -g * np.sin(a)))

    def tanh(self):
        y = np.tanh(self.value)
        return self._new(y, (self, lambda g: g * (1 - y**2)))

    def sigmoid(self):
        y = 1 / (1 + np.exp(-self.value))
        return self._new(y, (self, lambda g: g * y * (1 - y)))

    def sum(self):
        shape = self.value.shape
        return self._new(np.sum(self.value), (self, lambda g: np.broadcast_to(g, shape)))

    def __repr__(self):
        return f"Var({self.value!r})"


def _unbroadcast(g, shape):
    """Sums a cotangent over the axes that broadcasting added or stretched."""
    g = np.asarray(g)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, n in enumerate(shape):
        if n == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


def _matmul_vjps(a, b):
    """The vjps of a @ b for 1-D and 2-D operands."""
    if a.ndim == 1 and b.ndim == 1:  # inner product -> scalar
        return (lambda g: g * b), (lambda g: g * a)
    if b.ndim == 1:  # (m, n) @ (n,) -> (m,)
        return (lambda g: np.outer(g, b)), (lambda g: a.T @ g)
    if a.ndim == 1:  # (n,) @ (n, k) -> (k,)
        return (lambda g: b @ g), (lambda g: np.outer(a, g))
    return (lambda g: g @ b.T), (lambda g: a.T @ g)


def grad(f: Callable) -> Callable:
    """Gives the function computing the gradient of a scalar `f` by the tape.

    **Arguments:**

    - `f`: `f(*xs) -> scalar`, written with `Var` arithmetic, `@`, and the functions of
      `diffsim.autodiff` (`exp`, `log`, `sin`, `cos`, `tanh`, `sigmoid`, `sum`).

    **Returns:** `g(*xs)`, a tuple of numpy arrays shaped like `xs` (a single array for
    one argument).

    **Raises:** `ValueError` if `f` does not return a scalar.

    **Example:**

    ```python
    g = grad(lambda x: sum(sin(x) * x))(np.array([1.0, 2.0]))   # sin x + x cos x
    ```
    """

    def grad_f(*xs):
        tape = Tape()
        nodes = [Var(x, tape) for x in xs]
        out = f(*nodes)
        if not isinstance(out, Var):  # f ignored its inputs
            return (
                tuple(np.zeros_like(n.value) for n in nodes) if len(xs) > 1 else 0 * nodes[0].value
            )
        grads = tape.backward(out)
        gs = tuple(grads.get(id(n), np.zeros_like(n.value)) for n in nodes)
        return gs[0] if len(gs) == 1 else gs

    return grad_f


def value_and_grad(f: Callable) -> Callable:
    """Like `grad`, but gives `(f(*xs), gradients)`."""

    def vg(*xs):
        tape = Tape()
        nodes = [Var(x, tape) for x in xs]
        out = f(*nodes)
        grads = tape.backward(out)
        gs = tuple(grads.get(id(n), np.zeros_like(n.value)) for n in nodes)
        return out.value, gs[0] if len(gs) == 1 else gs

    return vg
