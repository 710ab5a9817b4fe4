"""Discrete-time models x_{t+1} = F(x_t, u_t): ODE discretisation, control limits, rollouts.

A discrete model is any callable `model(x, u) -> x_next` (an `eqx.Module` here, so its
parameters are differentiable); every method in `diffsim.control` takes one.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Array, Float
from .._rollout import BPTT, AbstractGradient, rollout
from ..ode import RK4, AbstractSolver
from ._systems import AbstractSystem


class AbstractLimits(eqx.Module):
    """A map from an unconstrained control to an admissible one (a control-limit strategy)."""

    @abc.abstractmethod
    def __call__(self, u: Float[Array, " m"]) -> Float[Array, " m"]:
        """Gives the admissible control applied to the plant."""


def _bounds(name, lower, upper):
    lower, upper = jnp.asarray(lower, float), jnp.asarray(upper, float)
    if not bool(jnp.all(lower < upper)):
        raise ValueError(
            f"{name}: need lower < upper elementwise, got lower={lower}, upper={upper}"
        )
    return lower, upper


class SmoothSaturation(AbstractLimits):
    """Smooth control limits: `mid + half * tanh((u - mid) / half)`, inside (lower, upper).

    Slope 1 at the midpoint, so a gradient method sees a smooth, bounded plant input.
    """

    lower: Float[Array, " m"]
    upper: Float[Array, " m"]

    def __init__(self, lower, upper):
        self.lower, self.upper = _bounds("SmoothSaturation", lower, upper)

    def __call__(self, u):
        mid, half = (self.upper + self.lower) / 2, (self.upper - self.lower) / 2
        return mid + half * jnp.tanh((u - mid) / half)


class Clip(AbstractLimits):
    """Hard control limits by projection onto the box [lower, upper] (zero gradient outside)."""

    lower: Float[Array, " m"]
    upper: Float[Array, " m"]

    def __init__(self, lower, upper):
        self.lower, self.upper = _bounds("Clip", lower, upper)

    def __call__(self, u):
        return jnp.clip(u, self.lower, self.upper)


class Discretised(eqx.Module):
    """A continuous system held at constant control over each interval of length `dt`.

    `model(x, u)` gives x(t + dt) from x(t) = x under the zero-order-hold control u,
    integrated by `substeps` steps of `solver` (RK4 by default). With `limits`, the
    control first passes through the limit strategy.

    **Arguments:**

    - `system`: an `AbstractSystem`.
    - `dt`: the control interval (s), > 0.
    - `solver`: a `diffsim.ode` solver (`RK4()`, `Euler()`, `Midpoint()`, `Heun()`).
    - `substeps`: integration steps per control interval, >= 1.
    - `limits`: `None`, `SmoothSaturation(lower, upper)` or `Clip(lower, upper)`.

    **Raises:** `ValueError` for `dt <= 0` or `substeps < 1`.

    **Example:**

    ```python
    model = Discretised(CartPole(), dt=0.05)
    x1 = model(jnp.array([0.0, jnp.pi, 0.0, 0.0]), jnp.array([1.0]))
    ```
    """

    system: AbstractSystem
    dt: float = eqx.field(static=True)
    solver: AbstractSolver = RK4()
    substeps: int = eqx.field(default=1, static=True)
    limits: AbstractLimits | None = None

    def __check_init__(self):
        if not self.dt > 0:
            raise ValueError(f"Discretised: dt must be > 0, got {self.dt}")
        if not (isinstance(self.substeps, int) and self.substeps >= 1):
            raise ValueError(f"Discretised: substeps must be an int >= 1, got {self.substeps}")
        if not isinstance(self.system, AbstractSystem):
            raise ValueError(f"Discretised: system must be an AbstractSystem, got {self.system!r}")

    @property
    def state_dim(self) -> int:
        return self.system.state_dim

    @property
    def control_dim(self) -> int:
        return self.system.control_dim

    def __call__(self, x: Float[Array, " n"], u: Float[Array, " m"]) -> Float[Array, " n"]:
        if self.limits is not None:
            u = self.limits(u)
        h = self.dt / self.substeps

        def f(t, y, args):
            return self.system.dynamics(y, args)

        for _ in range(self.substeps):
            x = self.solver.step(f, 0.0, x, u, h)
        return x


class LinearDynamics(eqx.Module):
    """A linear discrete model x_{t+1} = A x_t + B u_t (for example a linearisation).

    **Arguments:** `A` of shape `(n, n)`, `B` of shape `(n, m)`.
    """

    A: Float[Array, "n n"]
    B: Float[Array, "n m"]

    def __check_init__(self):
        n = jnp.shape(self.A)[0]
        if jnp.shape(self.A) != (n, n) or jnp.ndim(self.B) != 2 or jnp.shape(self.B)[0] != n:
            raise ValueError(
                f"LinearDynamics: need A (n, n) and B (n, m), got {jnp.shape(self.A)} and "
                f"{jnp.shape(self.B)}"
            )

    @property
    def state_dim(self) -> int:
        return self.A.shape[0]

    @property
    def control_dim(self) -> int:
        return self.B.shape[1]

    def __call__(self, x, u):
        return self.A @ x + self.B @ u


def trajectory(
    model,
    x0: Float[Array, " n"],
    us: Float[Array, "T m"],
    *,
    grad: AbstractGradient = BPTT(),
) -> Float[Array, "T+1 n"]:
    """Gives the states x_0..x_T of a discrete model driven by the controls u_0..u_{T-1}.

    The trajectory is one `diffsim.rollout`; `grad` picks how reverse mode goes back
    through it (`BPTT()`, `Checkpointed()`, `DiscreteAdjoint()`).

    **Raises:** `ValueError` if `us` is not two-dimensional.

    **Example:** `xs = trajectory(Discretised(Pendulum(), 0.05), jnp.zeros(2), jnp.zeros((100, 1)))`
    """
    if jnp.ndim(us) != 2:
        raise ValueError(f"trajectory: us must have shape (T, m), got {jnp.shape(us)}")

    def step(x, u):
        x_next = model(x, u)
        return x_next, x_next

    _, xs = rollout(step, x0, us, grad=grad)
    return jnp.concatenate([x0[None], xs])
