"""Robots and optimal control: dynamics, shooting, costates, iLQR, MPC, system identification.

A robot's trajectory is one `diffsim.rollout` of a discretised model; `jax.grad` through
it (backpropagation through time) is the costate recursion of optimal control.
"""

from ._costates import CostateResult as CostateResult, costate_gradient as costate_gradient
from ._costs import (
    Cost as Cost,
    add_costs as add_costs,
    box_penalty as box_penalty,
    control_effort as control_effort,
    log_barrier as log_barrier,
    obstacle as obstacle,
    quadratic as quadratic,
    terminal_quadratic as terminal_quadratic,
    trajectory_cost as trajectory_cost,
)
from ._discrete import (
    AbstractLimits as AbstractLimits,
    Clip as Clip,
    Discretised as Discretised,
    LinearDynamics as LinearDynamics,
    SmoothSaturation as SmoothSaturation,
    trajectory as trajectory,
)
from ._ilqr import ILQRResult as ILQRResult, ilqr as ilqr
from ._lqr import LQRSolution as LQRSolution, linearise as linearise, lqr as lqr
from ._mpc import MPC as MPC, ClosedLoopResult as ClosedLoopResult, closed_loop as closed_loop
from ._shooting import (
    MultipleShootingVars as MultipleShootingVars,
    ShootingResult as ShootingResult,
    multiple_shooting as multiple_shooting,
    multiple_shooting_init as multiple_shooting_init,
    shoot as shoot,
    single_shooting as single_shooting,
)
from ._sysid import prediction_loss as prediction_loss, with_parameters as with_parameters
from ._systems import (
    AbstractSystem as AbstractSystem,
    Acrobot as Acrobot,
    BicycleCar as BicycleCar,
    CartPole as CartPole,
    DoubleIntegrator as DoubleIntegrator,
    Pendulum as Pendulum,
    PlanarQuadrotor as PlanarQuadrotor,
    TwoLinkArm as TwoLinkArm,
)
