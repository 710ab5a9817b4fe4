"""Predictive coding on an arbitrary computation graph (Millidge, Tschantz & Buckley 2022)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._inference import AbstractInference, FixedIterations, max_abs


class Node(eqx.Module):
    """A vertex of a computation graph: value = `fn(params, *parent_values)`.

    **Arguments:** `fn`, `parents` (indices of earlier vertices: inputs are vertices
    0..n_inputs-1), `params` (any pytree; the trainable part of the vertex).
    """

    fn: Callable = eqx.field(static=True)
    parents: tuple[int, ...] = eqx.field(static=True)
    params: Any


class ComputationGraph(eqx.Module):
    """A directed acyclic graph of `Node`s in topological order; the last vertex is the output.

    **Arguments:** `n_inputs` (>= 1), `nodes` (>= 1; node k is vertex n_inputs + k and
    its parents must be earlier vertices).

    **Raises:** `ValueError` if a parent index is not an earlier vertex.

    **Example:**

    ```python
    g = ComputationGraph(1, [Node(lambda p, x: jnp.tanh(p @ x), (0,), W1),
                             Node(lambda p, x, h: p @ h + x, (0, 1), W2)])   # a skip
    y = g(x)
    ```
    """

    n_inputs: int = eqx.field(static=True)
    nodes: tuple[Node, ...]

    def __init__(self, n_inputs: int, nodes: Sequence[Node]):
        if not isinstance(n_inputs, int) or n_inputs < 1:
            raise ValueError(f"ComputationGraph: n_inputs must be an int >= 1, got {n_inputs!r}")
        if len(nodes) < 1:
            raise ValueError("ComputationGraph: nodes must hold at least one Node")
        for k, node in enumerate(nodes):
            vertex = n_inputs + k
            if not node.parents or any(not 0 <= p < vertex for p in node.parents):
                raise ValueError(
                    f"ComputationGraph: node {k} (vertex {vertex}) has parents "
                    f"{node.parents}; they must be earlier vertices 0..{vertex - 1}"
                )
        self.n_inputs = n_inputs
        self.nodes = tuple(nodes)

    def values(self, *inputs) -> tuple:
        """Gives every vertex's value in the forward pass (inputs first)."""
        if len(inputs) != self.n_inputs:
            raise ValueError(f"expected {self.n_inputs} inputs, got {len(inputs)}")
        vs = list(inputs)
        for node in self.nodes:
            vs.append(node.fn(node.params, *(vs[p] for p in node.parents)))
        return tuple(vs)

    def __call__(self, *inputs):
        """Gives the output vertex's value."""
        return self.values(*inputs)[-1]


class GraphInference(NamedTuple):
    """What `graph_pc_gradients` gives."""

    gradients: ComputationGraph
    """Shaped like the graph: each node's params replaced by -(its local update)."""
    errors: tuple
    """The settled error of every non-input vertex (-dL/dv at the fixed point)."""
    energies: Float[Array, " t"]
    iterations: Int[Array, ""]


@eqx.filter_jit
def graph_pc_gradients(
    graph: ComputationGraph,
    inputs: Sequence,
    loss: Callable,
    *,
    rate: float | Float[Array, ""] = 1.0,
    inference: AbstractInference | None = None,
) -> GraphInference:
    """Gives the parameter gradient of `loss(graph(*inputs))` by predictive coding on the graph.

    Every non-input vertex i gets a value node v_i and an error node e_i = v_i - v̂_i
    (prediction fixed at its feedforward value v̂_i: the fixed-prediction assumption);
    the output's error is clamped to -dL/dv_out. Inference is a `diffsim.rollout` of
    v_i <- v_i - rate (e_i - sum_{children j} J_ji^T e_j), with J_ji the local Jacobian of
    child j's function with respect to vertex i. At its fixed point e_i = -dL/dv_i, and
    each node's update -J_{i,theta}^T e_i uses only its inputs and its own error: it equals
    backprop. With rate 1 the fixed point is reached exactly after as many iterations as
    the longest path; `inference=None` runs one iteration per node.

    **Arguments:** `graph`; `inputs` (one per input vertex); `loss` (output -> scalar);
    `rate` (> 0); `inference` (`FixedIterations(n)` or `UntilConverged(tol)`).

    **Returns:** a `GraphInference`.

    **Raises:** `ValueError` for a rate <= 0 or the wrong number of inputs.
    """
    if isinstance(rate, int | float) and not rate > 0:
        raise ValueError(f"graph_pc_gradients: rate must be > 0, got {rate!r}")
    if inference is None:
        inference = FixedIterations(len(graph.nodes))
    vhat = graph.values(*inputs)
    n_in, n = graph.n_inputs, len(graph.nodes)
    e_out = -jax.grad(loss)(vhat[-1])
    # The local Jacobians at the feedforward point: with respect to parents and to params.
    vjps = []
    for node in graph.nodes:
        parents = tuple(vhat[p] for p in node.parents)
        _, vjp = jax.vjp(lambda th, *ps, fn=node.fn: fn(th, *ps), node.params, *parents)
        vjps.append(vjp)

    def errors_of(hidden):
        return [h - m for h, m in zip(hidden, vhat[n_in:-1])] + [e_out]

    def feedback(errs):
        fb = [jnp.zeros_like(v) for v in vhat[n_in:]]
        for k, node in enumerate(graph.nodes):
            cts = vjps[k](errs[k])[1:]
            for p, ct in zip(node.parents, cts):
                if p >= n_in:
                    fb[p - n_in] = fb[p - n_in] + ct
        return fb

    def step(hidden, _):
        errs = errors_of(hidden)
        fb = feedback(errs)
        grads = [e - f for e, f in zip(errs[:-1], fb[:-1])]
        residual = max_abs(grads)
        energy = 0.5 * sum(jnp.sum(e**2) for e in errs)
        return tuple(h - rate * g for h, g in zip(hidden, grads)), (energy, residual)

    hidden, energies, iterations, _ = inference.run(step, tuple(vhat[n_in:-1]))
    errs = errors_of(hidden)
    nodes = tuple(
        eqx.tree_at(
            lambda nd: nd.params,
            node,
            jax.tree.map(jnp.negative, vjps[k](errs[k])[0]),
        )
        for k, node in enumerate(graph.nodes)
    )
    assert len(nodes) == n
    return GraphInference(
        eqx.tree_at(lambda g: g.nodes, graph, nodes), tuple(errs), energies, iterations
    )
