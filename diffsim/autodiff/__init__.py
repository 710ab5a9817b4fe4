"""Automatic differentiation, shown and measured.

- A reverse-mode AD on a tape (`grad`, `value_and_grad`, `Tape`, `Var`) that a reader
  can follow in one sitting, and forward mode with dual numbers (`jvp`, `Dual`,
  `forward_grad`); both agree with `jax.grad` to round-off.
- Gradient diagnostics for equinox models: `layer_gradient_norms`, `zero_fraction`
  (entries a float16 / bfloat16 cast flushes to zero, with loss scaling),
  `rollout_jacobian_spectrum` (singular values of each step's Jacobian).
- Convolution and the transposed convolution built as its VJP (`conv`, `conv_transpose`,
  `ConvTranspose`), equal to `jax.lax.conv_transpose(..., transpose_kernel=True)`.
"""

from ._conv import (
    ConvTranspose as ConvTranspose,
    conv as conv,
    conv_transpose as conv_transpose,
    transposed_size as transposed_size,
)
from ._diagnostics import (
    layer_gradient_norms as layer_gradient_norms,
    rollout_jacobian_spectrum as rollout_jacobian_spectrum,
    zero_fraction as zero_fraction,
)
from ._dual import Dual as Dual, forward_grad as forward_grad, jvp as jvp
from ._functions import (
    cos as cos,
    exp as exp,
    log as log,
    sigmoid as sigmoid,
    sin as sin,
    sum as sum,
    tanh as tanh,
)
from ._tape import Tape as Tape, Var as Var, grad as grad, value_and_grad as value_and_grad
