"""Growing neural cellular automata (Mordvintsev et al., Distill 2020).

A cell holds `channels` numbers: RGBA (premultiplied) and hidden channels. Each step a
cell perceives its state and its 3x3 Sobel gradients (fixed filters), a per-cell MLP
with a zero-initialised last layer proposes an update, a random half of the cells
apply it (stochastic updates), and cells with no living neighbour (alpha > 0.1 in the
3x3 block, before and after the update) are cleared (alive masking).
"""

# ruff: noqa: F722  (jaxtyping shape strings are not forward references)

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, PRNGKeyArray, Scalar
from .._rollout import BPTT, AbstractGradient, rollout

_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


def _depthwise3x3(x: Array, kernel: np.ndarray) -> Array:
    """Zero-padded 3x3 correlation of every channel of `x` (..., H, W, C)."""
    h, w = x.shape[-3], x.shape[-2]
    pad = [(0, 0)] * (x.ndim - 3) + [(1, 1), (1, 1), (0, 0)]
    xp = jnp.pad(x, pad)
    out = jnp.zeros_like(x)
    for i in range(3):
        for j in range(3):
            if kernel[i, j] != 0:
                out = out + float(kernel[i, j]) * xp[..., i : i + h, j : j + w, :]
    return out


def _max3x3(a: Array) -> Array:
    """Zero-padded 3x3 max filter of (..., H, W) (inputs are >= 0 where used)."""
    h, w = a.shape[-2], a.shape[-1]
    pad = [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)]
    ap = jnp.pad(a, pad)
    out = ap[..., 0:h, 0:w]
    for i in range(3):
        for j in range(3):
            out = jnp.maximum(out, ap[..., i : i + h, j : j + w])
    return out


def alive_mask(x: Float[Array, "*batch h w c"], threshold: float = 0.1) -> Array:
    """Gives the cells with some cell of alpha > `threshold` in their 3x3 block (bool)."""
    return _max3x3(x[..., 3]) > threshold


def perceive(x: Float[Array, "*batch h w c"]) -> Float[Array, "*batch h w 3*c"]:
    """Gives each cell's perception: its state, and Sobel x and y gradients of every channel."""
    return jnp.concatenate([x, _depthwise3x3(x, _SOBEL_X), _depthwise3x3(x, _SOBEL_X.T)], axis=-1)


class GrowingNCA(eqx.Module):
    """A growing neural cellular automaton: fixed perception, learnt per-cell update.

    **Arguments:**

    - `channels`: state channels per cell (>= 4; the first four are RGBA).
    - `hidden`: width of the update MLP's hidden layer.
    - `fire_rate`: probability that a cell applies its update at a step.
    - `key`: PRNG key (keyword-only).

    The MLP's last layer starts at zero, so an untrained NCA leaves every state unchanged.

    **Example:**

    ```python
    nca = GrowingNCA(16, 128, key=key)
    final, _ = nca_rollout(nca, seed_state(40, 40, 16), 64, key=key)
    ```
    """

    w1: Float[Array, "hidden perception"]
    b1: Float[Array, " hidden"]
    w2: Float[Array, "channels hidden"]
    channels: int = eqx.field(static=True)
    fire_rate: float = eqx.field(static=True)

    def __init__(
        self, channels: int = 16, hidden: int = 128, fire_rate: float = 0.5, *, key: PRNGKeyArray
    ):
        if channels < 4:
            raise ValueError(f"GrowingNCA: channels must be >= 4 (RGBA first), got {channels}")
        if hidden < 1:
            raise ValueError(f"GrowingNCA: hidden must be >= 1, got {hidden}")
        if not 0 < fire_rate <= 1:
            raise ValueError(f"GrowingNCA: fire_rate must be in (0, 1], got {fire_rate}")
        self.channels = channels
        self.fire_rate = float(fire_rate)
        p = 3 * channels
        self.w1 = jax.random.normal(key, (hidden, p), jnp.float32) / math.sqrt(p)
        self.b1 = jnp.zeros(hidden, jnp.float32)
        self.w2 = jnp.zeros((channels, hidden), jnp.float32)

    def update(self, x: Float[Array, "*batch h w c"]) -> Float[Array, "*batch h w c"]:
        """Gives every cell's proposed state change (before stochastic and alive masks)."""
        p = perceive(x)
        h = jax.nn.relu(p @ self.w1.T + self.b1.reshape((1,) * (p.ndim - 1) + self.b1.shape))
        return h @ self.w2.T

    def step(self, x: Float[Array, "*batch h w c"], *, key: PRNGKeyArray) -> Array:
        """Gives the state after one stochastic, alive-masked update."""
        pre = alive_mask(x)
        fire = jax.random.bernoulli(key, self.fire_rate, x.shape[:-1])
        x = x + self.update(x) * fire[..., None].astype(x.dtype)
        alive = pre & alive_mask(x)
        return x * alive[..., None].astype(x.dtype)


def seed_state(height: int, width: int, channels: int = 16, *, dtype=jnp.float32) -> Array:
    """Gives the zero grid with one seed cell in the centre: alpha and hidden channels 1."""
    x = jnp.zeros((height, width, channels), dtype)
    return x.at[height // 2, width // 2, 3:].set(1.0)


def nca_rollout(
    model: GrowingNCA,
    x0: Float[Array, "*batch h w c"],
    steps: int,
    *,
    key: PRNGKeyArray,
    grad: AbstractGradient = BPTT(),
    every: int = 0,
) -> tuple[Array, Array | None]:
    """Gives the NCA state after `steps` steps (and every `every`-th state if `every > 0`).

    Runs `model.step` with `diffsim.rollout`, one PRNG key per step, so `grad` (e.g.
    `Checkpointed()`) decides how the gradient goes back through the steps.

    **Returns:** `(final, frames)`; `frames` stacks the states after steps `every`,
    `2 every`, ... (or is `None` when `every == 0`).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"nca_rollout: steps must be an int >= 1, got {steps!r}")
    keys = jax.random.split(key, steps)
    if every <= 0:
        final, _ = rollout(lambda x, k: (model.step(x, key=k), None), x0, keys, grad=grad)
        return final, None
    if steps % every:
        raise ValueError(f"nca_rollout: steps ({steps}) must be a multiple of every ({every})")

    def chunk(x, ks):
        x, _ = rollout(lambda y, k: (model.step(y, key=k), None), x, ks, grad=grad)
        return x, x

    return rollout(chunk, x0, keys.reshape(steps // every, every, *keys.shape[1:]))


def rgba_loss(x: Float[Array, "*batch h w c"], target: Float[Array, "h w 4"]) -> Scalar:
    """Gives the mean squared error between the RGBA channels and the target image."""
    target = jnp.broadcast_to(target, x[..., :4].shape)
    return jnp.mean((x[..., :4] - target) ** 2)


def to_rgb(x: Float[Array, "*batch h w c"]) -> Array:
    """Gives the RGB image (on white) of premultiplied RGBA channels, clipped to [0, 1]."""
    rgb, a = x[..., :3], jnp.clip(x[..., 3:4], 0.0, 1.0)
    return jnp.clip(1.0 - a + rgb, 0.0, 1.0)


def damage(x: Float[Array, "*batch h w c"], *, key: PRNGKeyArray, radius: float = 0.25) -> Array:
    """Gives `x` with a random disc (radius a fraction of the grid size) set to zero."""
    h, w = x.shape[-3], x.shape[-2]
    centre = jax.random.uniform(key, (*x.shape[:-3], 2), minval=-0.5, maxval=0.5)
    yy, xx = jnp.meshgrid(jnp.linspace(-1, 1, h), jnp.linspace(-1, 1, w), indexing="ij")
    lead = (1,) * (x.ndim - 3)
    cy, cx = centre[..., 0, None, None], centre[..., 1, None, None]
    d2 = (yy.reshape(lead + yy.shape) - cy) ** 2 + (xx.reshape(lead + xx.shape) - cx) ** 2
    keep = d2 > (2 * radius) ** 2
    return x * keep[..., None].astype(x.dtype)


def draw_target(size: int = 32, kind: str = "heart", *, pad: int = 0) -> np.ndarray:
    """Gives a target image drawn with matplotlib: float32 RGBA, premultiplied, (size, size, 4).

    **Arguments:**

    - `size`: image side in pixels (>= 8).
    - `kind`: `"heart"` (a red heart with an orange spot) or `"text:XYZ"` (the text in
      bold blue).
    - `pad`: transparent pixels added on every side.

    **Raises:** `ValueError` for a bad size or kind.
    """
    if size < 8:
        raise ValueError(f"draw_target: size must be >= 8, got {size}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, Polygon

    fig = Figure(figsize=(1, 1), dpi=size)
    fig.patch.set_alpha(0.0)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-1.2, 1.2)
    ax.set_ylim(-1.2, 1.2)
    ax.axis("off")
    ax.patch.set_alpha(0.0)
    if kind == "heart":
        t = np.linspace(0, 2 * np.pi, 200)
        xs = 16 * np.sin(t) ** 3 / 17
        ys = (13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)) / 17 + 0.1
        ax.add_patch(Polygon(np.stack([xs, ys], 1), closed=True, color=(0.85, 0.1, 0.2)))
        ax.add_patch(Circle((-0.35, 0.3), 0.22, color=(1.0, 0.65, 0.1)))
    elif kind.startswith("text:") and len(kind) > 5:
        ax.text(
            0,
            0,
            kind[5:],
            ha="center",
            va="center",
            fontsize=70 / max(2, len(kind) - 5),
            fontweight="bold",
            color=(0.1, 0.3, 0.8),
        )
    else:
        raise ValueError(f"draw_target: kind must be 'heart' or 'text:...', got {kind!r}")
    canvas.draw()
    img = np.asarray(canvas.buffer_rgba(), dtype=np.float32)[:size, :size] / 255.0
    img[..., :3] *= img[..., 3:4]
    if pad:
        img = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))
    return img
