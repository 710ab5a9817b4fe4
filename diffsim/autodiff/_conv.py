"""Convolution, and transposed convolution built as its vector-Jacobian product.

Layout: arrays are channels-first, `(N, C, *spatial)` with 1 or 2 spatial axes; a kernel is
`(C_out, C_in, *k)`, the layout of the forward convolution ("OIH" / "OIHW").

**Kernel convention.** `conv_transpose(y, w, ...)` takes the kernel `w` of the forward
convolution `conv(x, w, ...)` that maps C_in channels to C_out; it maps C_out channels back
to C_in. It equals `jax.lax.conv_transpose(y, w, strides, padding, dimension_numbers=
("NCH", "OIH", "NCH"), transpose_kernel=True)` (2-D: "NCHW", "OIHW"); with
`transpose_kernel=False`, lax wants the kernel flipped in every spatial axis and with its
two channel axes swapped, `flip(w, spatial).swapaxes(0, 1)`. Because a strided convolution
maps several input sizes to the same output size, the transpose needs the size to
restore; by default it is lax's: `y * stride` for SAME, `y * stride + max(k - stride, 0)`
for VALID.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

_SPATIAL = {1: "H", 2: "HW"}


def _dimension_numbers(nd):
    sp = _SPATIAL[nd]
    return ("NC" + sp, "OI" + sp, "NC" + sp)


def _check(name, x, w, stride, padding):
    nd = w.ndim - 2
    if nd not in _SPATIAL:
        raise ValueError(
            f"{name}: kernel must be (C_out, C_in, k) or (C_out, C_in, kh, kw), got {w.shape}"
        )
    if x.ndim != nd + 2:
        raise ValueError(
            f"{name}: input must have {nd + 2} axes (N, C, spatial), got shape {x.shape}"
        )
    if padding not in ("SAME", "VALID"):
        raise ValueError(f"{name}: padding must be 'SAME' or 'VALID', got {padding!r}")
    strides = (stride,) * nd if isinstance(stride, int) else tuple(stride)
    if len(strides) != nd or any(not isinstance(s, int) or s < 1 for s in strides):
        raise ValueError(f"{name}: stride must be ints >= 1, one per spatial axis, got {stride!r}")
    return nd, strides


def conv(
    x: Float[Array, "n c_in *s"],
    w: Float[Array, "c_out c_in *k"],
    stride: int | Sequence[int] = 1,
    padding: str = "SAME",
) -> Float[Array, "n c_out *t"]:
    """Gives the (cross-correlation) convolution of `x` with kernel `w`.

    **Arguments:**

    - `x`: `(N, C_in, L)` or `(N, C_in, H, W)`.
    - `w`: `(C_out, C_in, k)` or `(C_out, C_in, kh, kw)`.
    - `stride`: an int or one int per spatial axis, >= 1.
    - `padding`: `"SAME"` (output size ceil(n / stride)) or `"VALID"`.

    **Returns:** `(N, C_out, *spatial_out)`.

    **Raises:** `ValueError` for mismatched ranks, a bad stride or padding.

    **Example:** `conv(jnp.ones((1, 3, 8, 8)), jnp.ones((4, 3, 3, 3)), stride=2).shape`
    is `(1, 4, 4, 4)`.
    """
    nd, strides = _check("conv", x, w, stride, padding)
    return jax.lax.conv_general_dilated(
        x, w, strides, padding, dimension_numbers=_dimension_numbers(nd)
    )


def transposed_size(n_out: int, k: int, stride: int, padding: str) -> int:
    """Gives the input size that `conv_transpose` restores by default (lax's choice)."""
    return n_out * stride if padding == "SAME" else n_out * stride + max(k - stride, 0)


def conv_transpose(
    y: Float[Array, "n c_out *t"],
    w: Float[Array, "c_out c_in *k"],
    stride: int | Sequence[int] = 1,
    padding: str = "SAME",
    input_size: tuple[int, ...] | None = None,
) -> Float[Array, "n c_in *s"]:
    """Gives the transposed convolution of `y`: the VJP of `conv(., w, stride, padding)`.

    `<conv(x, w), y> = <x, conv_transpose(y, w)>` for every x, y of matching shapes.

    **Arguments:**

    - `y`: `(N, C_out, *spatial)`, shaped like an output of `conv`.
    - `w`: the forward convolution's kernel `(C_out, C_in, *k)` (see the module docstring
      for lax's convention).
    - `stride`, `padding`: those of the forward convolution.
    - `input_size`: the spatial size of the forward convolution's input to restore;
      default lax's (see `transposed_size`).

    **Returns:** `(N, C_in, *input_size)`.

    **Raises:** `ValueError` for mismatched ranks, a bad stride or padding, or an
    `input_size` that `conv` does not map to `y`'s size.

    **Example:** `conv_transpose(jnp.ones((1, 4, 4, 4)), jnp.ones((4, 3, 3, 3)), 2).shape`
    is `(1, 3, 8, 8)`.
    """
    nd, strides = _check("conv_transpose", y, w, stride, padding)
    ks = w.shape[2:]
    if input_size is None:
        input_size = tuple(
            transposed_size(n, k, s, padding) for n, k, s in zip(y.shape[2:], ks, strides)
        )
    x_shape = (y.shape[0], w.shape[1], *input_size)
    expected = jax.eval_shape(
        lambda x: conv(x, w, strides, padding), jax.ShapeDtypeStruct(x_shape, y.dtype)
    )
    if expected.shape != y.shape:
        raise ValueError(
            f"conv_transpose: input_size={tuple(input_size)} convolves to {expected.shape}, "
            f"not y's shape {y.shape}"
        )
    # conv is linear in x, so its VJP at any point (zeros) is the transposed map; XLA drops
    # the unused forward convolution.
    _, vjp = jax.vjp(lambda x: conv(x, w, strides, padding), jnp.zeros(x_shape, y.dtype))
    (x,) = vjp(y)
    return x


class ConvTranspose(eqx.Module):
    """A transposed-convolution layer (upsampling by `stride`), the VJP of a convolution.

    Unbatched like equinox's layers: maps `(C_out, *spatial)` to `(C_in, *spatial * stride)`
    (SAME) -- note the channel names are those of the forward convolution it transposes.

    **Arguments:** `in_channels`, `out_channels` (of this layer), `kernel_size`, `stride`,
    `padding`, `num_spatial_dims` (1 or 2), `key` (keyword-only).
    """

    weight: Float[Array, "c_in_of_conv c_out_of_conv *k"]
    bias: Float[Array, " c_out"]
    stride: int = eqx.field(static=True)
    padding: str = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 2,
        padding: str = "SAME",
        num_spatial_dims: int = 2,
        *,
        key,
    ):
        if num_spatial_dims not in (1, 2):
            raise ValueError(
                f"ConvTranspose: num_spatial_dims must be 1 or 2, got {num_spatial_dims}"
            )
        # The forward convolution maps out_channels -> in_channels; fan-in of this layer is
        # in_channels * k^d / stride^d on average, the He scale below uses in_channels * k^d.
        shape = (in_channels, out_channels) + (kernel_size,) * num_spatial_dims
        fan_in = in_channels * kernel_size**num_spatial_dims / stride**num_spatial_dims
        self.weight = jax.random.normal(key, shape) * jnp.sqrt(2.0 / fan_in)
        self.bias = jnp.zeros(out_channels)
        self.stride = stride
        self.padding = padding

    def __call__(self, y: Float[Array, "c ..."]) -> Float[Array, "c_out ..."]:
        x = conv_transpose(y[None], self.weight, self.stride, self.padding)[0]
        return x + self.bias.reshape(-1, *([1] * (x.ndim - 1)))
