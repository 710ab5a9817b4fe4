"""Rule inference: a network shaped like an automaton, trained on observed frames.

The network sees each cell's neighbourhood only (a convolution whose receptive field is
the neighbourhood), then applies a small per-cell MLP that gives the logit of the cell's
next state. After training, evaluating it on every neighbourhood configuration gives a
discrete rule table: the learned weights are the rule.
"""

# ruff: noqa: F722  (jaxtyping shape strings are not forward references)

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float, Int, PRNGKeyArray, Scalar, Shaped
from .._rollout import BPTT, AbstractGradient, rollout
from ._rules import ElementaryRule, LifeLikeRule
from ._simulate import AbstractBoundary, Periodic, run_elementary, run_life


def neighborhoods(
    cells: Shaped[ArrayLike, "..."], dims: int, boundary: AbstractBoundary = Periodic()
) -> Shaped[Array, "... taps"]:
    """Gives every cell's neighbourhood as a trailing axis.

    For `dims = 1` the taps are `(left, centre, right)` (with `boundary`), for `dims = 2`
    the 3x3 Moore block in row-major order (tap `3 (dy + 1) + (dx + 1)`), periodic.
    Tap `i` has weight `2^(taps - 1 - i)` in a configuration's index, so in 1D the index
    is Wolfram's `4 l + 2 c + r`.
    """
    cells = jnp.asarray(cells)
    if dims == 1:
        p = boundary.pad(cells)
        return jnp.stack([p[..., :-2], p[..., 1:-1], p[..., 2:]], axis=-1)
    if dims == 2:
        taps = [
            jnp.roll(cells, (-dy, -dx), axis=(-2, -1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
        ]
        return jnp.stack(taps, axis=-1)
    raise ValueError(f"dims must be 1 or 2, got {dims!r}")


def configurations(dims: int) -> Int[Array, "n taps"]:
    """Gives every 0/1 neighbourhood configuration, row `i` being the one with index `i`."""
    taps = {1: 3, 2: 9}.get(dims)
    if taps is None:
        raise ValueError(f"dims must be 1 or 2, got {dims!r}")
    idx = np.arange(2**taps)
    bits = (idx[:, None] >> np.arange(taps - 1, -1, -1)[None, :]) & 1
    return jnp.asarray(bits, jnp.int32)


def configuration_index(patches: Shaped[ArrayLike, "... taps"]) -> Int[Array, "..."]:
    """Gives the index of each 0/1 neighbourhood (see `neighborhoods`)."""
    patches = jnp.asarray(patches).astype(jnp.int32)
    taps = patches.shape[-1]
    weights = jnp.asarray(2 ** np.arange(taps - 1, -1, -1), jnp.int32)
    return patches @ weights


def true_table(rule: ElementaryRule | LifeLikeRule) -> Int[Array, " n"]:
    """Gives the rule's next state for every neighbourhood configuration (8 or 512 entries)."""
    if isinstance(rule, ElementaryRule):
        return rule.table
    if isinstance(rule, LifeLikeRule):
        conf = configurations(2)
        centre = conf[:, 4]
        count = jnp.sum(conf, axis=-1) - centre
        return rule.table[centre, count]
    raise ValueError(f"rule must be an ElementaryRule or LifeLikeRule, got {rule!r}")


class LocalRuleNet(eqx.Module):
    """A cellular automaton with learnable rule: neighbourhood convolution, then per-cell MLP.

    `logits(x)` for states `x` of shape `(..., W)` (1D) or `(..., H, W)` (2D) gives the
    logit of each cell's next state; `step(p)` gives the next-state probabilities, so a
    rollout of `step` is a soft automaton one can backpropagate through.

    **Arguments:**

    - `dims`: 1 (neighbourhood of 3) or 2 (Moore neighbourhood of 9, periodic).
    - `channels`: outputs of the neighbourhood convolution.
    - `hidden`: width of the per-cell hidden layer.
    - `boundary`: 1D boundary (`Periodic()` or `Fixed(v)`).
    - `key`: PRNG key (keyword-only).
    - `dtype`: parameter dtype (float32 by default).

    **Raises:** `ValueError` for `dims` not in (1, 2) or non-positive widths.

    **Example:** `net = LocalRuleNet(1, 16, 16, key=key); net.table()` reads a rule table.
    """

    conv_weight: Float[Array, "channels taps"]
    conv_bias: Float[Array, " channels"]
    hidden_weight: Float[Array, "hidden channels"]
    hidden_bias: Float[Array, " hidden"]
    out_weight: Float[Array, " hidden"]
    out_bias: Float[Array, ""]
    dims: int = eqx.field(static=True)
    boundary: AbstractBoundary

    def __init__(
        self,
        dims: int,
        channels: int = 16,
        hidden: int = 16,
        *,
        boundary: AbstractBoundary = Periodic(),
        key: PRNGKeyArray,
        dtype=jnp.float32,
    ):
        if dims not in (1, 2):
            raise ValueError(f"LocalRuleNet: dims must be 1 or 2, got {dims!r}")
        if channels < 1 or hidden < 1:
            raise ValueError(
                f"LocalRuleNet: channels and hidden must be >= 1, got {channels}, {hidden}"
            )
        taps = 3 if dims == 1 else 9
        k1, k2, k3 = jax.random.split(key, 3)
        self.dims = dims
        self.boundary = boundary
        # Inputs are 0/1, so the convolution sees centred inputs 2x - 1 (see `features`).
        self.conv_weight = jax.random.normal(k1, (channels, taps), dtype) / math.sqrt(taps)
        self.conv_bias = jnp.zeros(channels, dtype)
        self.hidden_weight = jax.random.normal(k2, (hidden, channels), dtype) / math.sqrt(channels)
        self.hidden_bias = jnp.zeros(hidden, dtype)
        self.out_weight = jax.random.normal(k3, (hidden,), dtype) / math.sqrt(hidden)
        self.out_bias = jnp.zeros((), dtype)

    def patch_logits(self, patches: Shaped[ArrayLike, "... taps"]) -> Float[Array, "..."]:
        """Gives the next-state logit for neighborhoods given as a trailing axis."""
        x = 2 * jnp.asarray(patches, self.conv_weight.dtype) - 1
        h = jnp.tanh(_affine(x, self.conv_weight, self.conv_bias))
        h = jnp.tanh(_affine(h, self.hidden_weight, self.hidden_bias))
        return h @ self.out_weight + self.out_bias

    def logits(self, cells: Shaped[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Gives each cell's next-state logit (same shape as `cells`)."""
        return self.patch_logits(neighborhoods(cells, self.dims, self.boundary))

    def step(self, probs: Shaped[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Gives the next-state probabilities of a soft state."""
        return jax.nn.sigmoid(self.logits(probs))

    def table(self) -> Int[Array, " n"]:
        """Gives the learned rule: next state (logit > 0) for every configuration index."""
        return (self.patch_logits(configurations(self.dims)) > 0).astype(jnp.int32)


def _affine(x, weight, bias):
    """`x @ weight.T + bias` over the trailing axis, with explicit broadcasting."""
    return x @ weight.T + bias.reshape((1,) * (x.ndim - 1) + bias.shape)


def rollout_logits(
    model: LocalRuleNet,
    cells: Shaped[ArrayLike, "..."],
    k: int,
    *,
    grad: AbstractGradient = BPTT(),
) -> Float[Array, "..."]:
    """Gives the logits of the state `k` steps after `cells` under the learned automaton.

    Runs `k - 1` steps with `diffsim.rollout` (so `grad` picks how the gradient goes back
    through them), then `model.logits` once. The intermediate states are the soft
    next-state probabilities. (Rounding them in the forward pass with a straight-through
    gradient was tried and trains far worse on k = 2 life-like data.)
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"rollout_logits: k must be an int >= 1, got {k!r}")

    def step(p, _):
        return model.step(p), None

    p = jnp.asarray(cells, model.conv_weight.dtype)
    if k > 1:
        p, _ = rollout(step, p, length=k - 1, grad=grad)
    return model.logits(p)


def rule_inference_loss(
    model: LocalRuleNet,
    frames: Shaped[ArrayLike, "time ..."],
    *,
    k: int = 1,
    grad: AbstractGradient = BPTT(),
) -> Scalar:
    """Gives the mean binary cross-entropy of predicting each observed frame from the last.

    **Arguments:**

    - `model`: the local network.
    - `frames`: observed 0/1 frames, `(T, W)` or `(T, H, W)` (optionally with batch axes
      after T), consecutive frames `k` automaton steps apart.
    - `k`: steps between observed frames; the model is rolled out `k` steps from each
      observed frame (backpropagation through `k` steps).
    - `grad`: gradient strategy for the rollout.

    **Returns:** a scalar, in nats per cell.

    **Raises:** `ValueError` for fewer than two frames or a bad `k`.
    """
    frames = jnp.asarray(frames)
    if frames.ndim < model.dims + 1 or frames.shape[0] < 2:
        raise ValueError(
            f"rule_inference_loss: frames must have shape (T >= 2, ...{' H' * (model.dims - 1)}"
            f" W), got {frames.shape}"
        )
    z = rollout_logits(model, frames[:-1], k, grad=grad)
    y = frames[1:].astype(z.dtype)
    return jnp.mean(jnp.logaddexp(0, z) - y * z)


def observed_configurations(
    frames: Shaped[ArrayLike, "time ..."],
    dims: int,
    *,
    boundary: AbstractBoundary = Periodic(),
    min_count: int = 1,
) -> Array:
    """Gives which neighbourhood configurations the data can identify (bool, 2^taps).

    A configuration counts as observed when it occurs as an input (in `frames[:-1]`) at
    least `min_count` times. One that never occurs leaves the rule's value there
    unidentifiable; with noisy observations, a configuration seen only a few times
    cannot be told apart from a flipped one, so a larger `min_count` is the honest
    criterion there.
    """
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(
            f"observed_configurations: min_count must be an int >= 1, got {min_count!r}"
        )
    frames = jnp.asarray(frames)
    idx = configuration_index(neighborhoods(frames[:-1], dims, boundary)).ravel()
    n = 2 ** (3 if dims == 1 else 9)
    return jnp.bincount(idx, length=n) >= min_count


def compare_tables(learned, truth, observed) -> dict[str, int | bool]:
    """Gives how a learned table matches the truth on the identifiable configurations.

    **Returns:** a dict with `correct` and `wrong` (counted over observed configurations),
    `unidentifiable` (configurations never observed: reported, not guessed), and `exact`
    (no wrong entry among the observed ones).
    """
    learned, truth, observed = (np.asarray(a) for a in (learned, truth, observed))
    ok = learned == truth
    wrong = int(np.sum(~ok & observed))
    return {
        "correct": int(np.sum(ok & observed)),
        "wrong": wrong,
        "unidentifiable": int(np.sum(~observed)),
        "exact": wrong == 0,
    }


def reported_table(learned, observed) -> np.ndarray:
    """Gives the learned table with -1 where the configuration was never observed."""
    return np.where(np.asarray(observed), np.asarray(learned), -1)


def elementary_data(
    rule: ElementaryRule | int | Shaped[ArrayLike, " 8"],
    *,
    width: int,
    frames: int,
    key: PRNGKeyArray,
    density: float = 0.5,
) -> Int[Array, "frames width"]:
    """Gives `frames` rows of an elementary automaton from a random periodic row."""
    row = jax.random.bernoulli(key, density, (width,)).astype(jnp.int32)
    return run_elementary(rule, row, frames - 1)


def life_data(
    rule: LifeLikeRule | str,
    *,
    size: int,
    frames: int,
    key: PRNGKeyArray,
    density: float = 0.5,
    burn_in: int = 0,
) -> Int[Array, "frames size size"]:
    """Gives `frames` generations of a life-like rule from a random periodic soup."""
    grid = jax.random.bernoulli(key, density, (size, size)).astype(jnp.int32)
    out = run_life(rule, grid, burn_in + frames - 1)
    return out[burn_in:]


def flip_cells(frames: Shaped[ArrayLike, "..."], rate: float, *, key: PRNGKeyArray):
    """Gives `frames` with each cell flipped independently with probability `rate`."""
    if not 0 <= rate <= 1:
        raise ValueError(f"flip_cells: rate must be in [0, 1], got {rate!r}")
    frames = jnp.asarray(frames)
    flips = jax.random.bernoulli(key, rate, frames.shape)
    return jnp.where(flips, 1 - frames, frames)
