"""Continuous-time robot dynamics dx/dt = f(x, u, theta), physical parameters as fields.

Every system is a final `eqx.Module` whose floating-point fields are its physical
parameters (so `jax.grad` with respect to the module gives parameter gradients, and
system identification fits them). Angles are in radians, lengths in metres, masses in
kilograms, forces in newtons, torques in newton metres, time in seconds.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Array, Float

State = Float[Array, " n"]
Control = Float[Array, " m"]


class AbstractSystem(eqx.Module):
    """A continuous-time controlled system dx/dt = f(x, u).

    Subclasses set the class variables `state_dim` and `control_dim`, and implement
    `dynamics`. Discretise with `diffsim.control.Discretised`.
    """

    state_dim: ClassVar[int]
    control_dim: ClassVar[int]

    @abc.abstractmethod
    def dynamics(self, x: State, u: Control) -> State:
        """Gives dx/dt at state `x` (shape `(state_dim,)`) under control `u` (`(control_dim,)`)."""


def _param(default: float):
    """A physical parameter: stored as a floating-point array so that it is differentiable."""
    return eqx.field(default=default, converter=_as_float)


def _as_float(value):
    return jnp.asarray(value, dtype=jnp.result_type(float))


def _check(system: AbstractSystem, x, u):
    if jnp.shape(x) != (system.state_dim,):
        raise ValueError(
            f"{type(system).__name__}.dynamics: x must have shape ({system.state_dim},), "
            f"got {jnp.shape(x)}"
        )
    if jnp.shape(u) != (system.control_dim,):
        raise ValueError(
            f"{type(system).__name__}.dynamics: u must have shape ({system.control_dim},), "
            f"got {jnp.shape(u)}"
        )


def _solve2(M, b):
    """Solves a 2x2 linear system in closed form (smooth, no pivoting branches)."""
    det = M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
    return jnp.stack(
        [
            (M[1, 1] * b[0] - M[0, 1] * b[1]) / det,
            (M[0, 0] * b[1] - M[1, 0] * b[0]) / det,
        ]
    )


class DoubleIntegrator(AbstractSystem):
    """A point mass on a line pushed by a force: the linear reference system.

    State `x = [position (m), velocity (m/s)]`, control `u = [force (N)]`.

    **Example:** `DoubleIntegrator(mass=2.0).dynamics(jnp.zeros(2), jnp.ones(1))`.
    """

    mass: Array = _param(1.0)
    state_dim: ClassVar[int] = 2
    control_dim: ClassVar[int] = 1

    def dynamics(self, x, u):
        _check(self, x, u)
        return jnp.stack([x[1], u[0] / self.mass])


class Pendulum(AbstractSystem):
    """A damped pendulum (point mass on a massless rod) driven by a torque at the pivot.

    State `x = [angle (rad, 0 hanging down), angular velocity (rad/s)]`, control
    `u = [torque (N m)]`.
    """

    mass: Array = _param(1.0)
    length: Array = _param(1.0)
    damping: Array = _param(0.1)
    gravity: Array = _param(9.81)
    state_dim: ClassVar[int] = 2
    control_dim: ClassVar[int] = 1

    def dynamics(self, x, u):
        _check(self, x, u)
        th, w = x
        ml2 = self.mass * self.length**2
        acc = (u[0] - self.damping * w - self.mass * self.gravity * self.length * jnp.sin(th)) / ml2
        return jnp.stack([w, acc])


class CartPole(AbstractSystem):
    """A pole (point mass on a massless rod) hinged on a cart pushed along a rail.

    State `x = [cart position (m), pole angle (rad, 0 upright, pi hanging down),
    cart velocity (m/s), pole angular velocity (rad/s)]`, control `u = [force on the
    cart (N)]`. Viscous friction `cart_friction` (N s/m) on the cart and
    `pole_friction` (N m s) at the hinge. Manipulator form M(q) q'' + C q' + G = B u.
    """

    cart_mass: Array = _param(1.0)
    pole_mass: Array = _param(0.1)
    length: Array = _param(0.5)
    cart_friction: Array = _param(0.0)
    pole_friction: Array = _param(0.0)
    gravity: Array = _param(9.81)
    state_dim: ClassVar[int] = 4
    control_dim: ClassVar[int] = 1

    def dynamics(self, x, u):
        _check(self, x, u)
        _, th, v, w = x
        mc, mp, l = self.cart_mass, self.pole_mass, self.length
        c, s = jnp.cos(th), jnp.sin(th)
        M = jnp.array([[mc + mp, mp * l * c], [mp * l * c, mp * l**2]])
        bias = jnp.stack(
            [
                -mp * l * s * w**2 + self.cart_friction * v,
                -mp * self.gravity * l * s + self.pole_friction * w,
            ]
        )
        acc = _solve2(M, jnp.stack([u[0], jnp.zeros_like(u[0])]) - bias)
        return jnp.stack([v, w, acc[0], acc[1]])

    def positions(self, x: State) -> tuple[Array, Array]:
        """Gives the cart centre `(p, 0)` and the pole tip `(p + l sin th, l cos th)`, in m."""
        p, th = x[0], x[1]
        return (
            jnp.stack([p, jnp.zeros_like(p)]),
            jnp.stack([p + self.length * jnp.sin(th), self.length * jnp.cos(th)]),
        )


def _two_link(m1, m2, l1, l2, g, damping, q, qd, tau):
    """Uniform-rod double pendulum in manipulator form; q = 0 hangs straight down."""
    lc1, lc2 = l1 / 2, l2 / 2
    I1, I2 = m1 * l1**2 / 3, m2 * l2**2 / 3  # about each link's own joint
    c2, s2 = jnp.cos(q[1]), jnp.sin(q[1])
    s1, s12 = jnp.sin(q[0]), jnp.sin(q[0] + q[1])
    h = m2 * l1 * lc2
    M = jnp.array([[I1 + I2 + m2 * l1**2 + 2 * h * c2, I2 + h * c2], [I2 + h * c2, I2]])
    Cqd = jnp.stack([-2 * h * s2 * qd[0] * qd[1] - h * s2 * qd[1] ** 2, h * s2 * qd[0] ** 2])
    G = jnp.stack([(m1 * lc1 + m2 * l1) * g * s1 + m2 * g * lc2 * s12, m2 * g * lc2 * s12])
    qdd = _solve2(M, tau - Cqd - G - damping * qd)
    return jnp.concatenate([qd, qdd])


def _two_link_points(l1, l2, q):
    elbow = jnp.stack([l1 * jnp.sin(q[0]), -l1 * jnp.cos(q[0])])
    tip = elbow + jnp.stack([l2 * jnp.sin(q[0] + q[1]), -l2 * jnp.cos(q[0] + q[1])])
    return elbow, tip


class TwoLinkArm(AbstractSystem):
    """A planar two-link arm of uniform rods with a torque motor at each joint.

    State `x = [q1, q2 (rad), q1', q2' (rad/s)]` with `q1` the shoulder angle from the
    downward vertical and `q2` the elbow angle relative to the first link; control
    `u = [shoulder torque, elbow torque] (N m)`. Set `gravity=0` for an arm moving in a
    horizontal plane. With `u = 0` it is the (chaotic) double pendulum.
    Manipulator equation M(q) q'' + C(q, q') q' + G(q) = u - damping q'.
    """

    m1: Array = _param(1.0)
    m2: Array = _param(1.0)
    l1: Array = _param(1.0)
    l2: Array = _param(1.0)
    gravity: Array = _param(9.81)
    damping: Array = _param(0.0)
    state_dim: ClassVar[int] = 4
    control_dim: ClassVar[int] = 2

    def dynamics(self, x, u):
        _check(self, x, u)
        return _two_link(
            self.m1, self.m2, self.l1, self.l2, self.gravity, self.damping, x[:2], x[2:], u
        )

    def positions(self, x: State) -> tuple[Array, Array]:
        """Gives the elbow and tip positions `(2,)` in m, base at the origin, y up."""
        return _two_link_points(self.l1, self.l2, x[:2])


class Acrobot(AbstractSystem):
    """The acrobot: a two-link arm with a motor at the elbow only (underactuated).

    State as `TwoLinkArm` (q = 0 hanging down), control `u = [elbow torque (N m)]`.
    """

    m1: Array = _param(1.0)
    m2: Array = _param(1.0)
    l1: Array = _param(1.0)
    l2: Array = _param(1.0)
    gravity: Array = _param(9.81)
    damping: Array = _param(0.0)
    state_dim: ClassVar[int] = 4
    control_dim: ClassVar[int] = 1

    def dynamics(self, x, u):
        _check(self, x, u)
        tau = jnp.stack([jnp.zeros_like(u[0]), u[0]])
        return _two_link(
            self.m1, self.m2, self.l1, self.l2, self.gravity, self.damping, x[:2], x[2:], tau
        )

    def positions(self, x: State) -> tuple[Array, Array]:
        """Gives the elbow and tip positions `(2,)` in m, base at the origin, y up."""
        return _two_link_points(self.l1, self.l2, x[:2])


class BicycleCar(AbstractSystem):
    """The kinematic bicycle model of a car (rear-axle reference point).

    State `x = [x, y (m), heading (rad), speed (m/s)]`, control `u = [acceleration
    (m/s^2), steering angle (rad)]`. The steering angle is smoothly saturated to
    `+-max_steer` (`max_steer * tanh(delta / max_steer)`), so any control is admissible.
    """

    wheelbase: Array = _param(2.5)
    max_steer: Array = _param(0.6)
    state_dim: ClassVar[int] = 4
    control_dim: ClassVar[int] = 2

    def dynamics(self, x, u):
        _check(self, x, u)
        _, _, psi, v = x
        delta = self.max_steer * jnp.tanh(u[1] / self.max_steer)
        return jnp.stack(
            [v * jnp.cos(psi), v * jnp.sin(psi), v * jnp.tan(delta) / self.wheelbase, u[0]]
        )


class PlanarQuadrotor(AbstractSystem):
    """A quadrotor restricted to the vertical plane, two rotor thrusts.

    State `x = [x, z (m), pitch (rad), x', z' (m/s), pitch' (rad/s)]`, control
    `u = [left thrust, right thrust] (N)`. Hover needs `u = m g / 2` on each rotor.
    """

    mass: Array = _param(1.0)
    inertia: Array = _param(0.01)
    arm: Array = _param(0.2)
    gravity: Array = _param(9.81)
    state_dim: ClassVar[int] = 6
    control_dim: ClassVar[int] = 2

    def dynamics(self, x, u):
        _check(self, x, u)
        phi = x[2]
        thrust = u[0] + u[1]
        ax = -thrust * jnp.sin(phi) / self.mass
        az = thrust * jnp.cos(phi) / self.mass - self.gravity
        alpha = self.arm * (u[1] - u[0]) / self.inertia
        return jnp.concatenate([x[3:], jnp.stack([ax, az, alpha])])

    def hover(self) -> Control:
        """Gives the hover thrusts `(2,)`, each m g / 2 (N)."""
        return jnp.full((2,), self.mass * self.gravity / 2)
