"""Cellular automata: fast simulation, rule inference by backpropagation, neural CA.

Simulation: Wolfram's elementary rules (`ElementaryRule`, `elementary_step`,
`run_elementary`) with `Periodic()` or `Fixed(v)` boundaries, and life-like B/S rules
(`parse_rule`, `LifeLikeRule`, `life_step`, `run_life`) on periodic grids, with a
`RollSum()` or a `BitPacked()` (32 cells per uint32 word) method.

Inference: `LocalRuleNet` (neighbourhood convolution + per-cell MLP) trained with
`rule_inference_loss` (a k-step soft rollout through `diffsim.rollout`), then `table()`
reads the learned rule; `observed_configurations` says what the data can identify.

Neural CA: `GrowingNCA` with `nca_rollout`, `damage`, `draw_target`.
"""

# ruff: noqa: F722  (jaxtyping shape strings are not forward references)

from ._inference import (
    LocalRuleNet as LocalRuleNet,
    compare_tables as compare_tables,
    configuration_index as configuration_index,
    configurations as configurations,
    elementary_data as elementary_data,
    flip_cells as flip_cells,
    life_data as life_data,
    neighborhoods as neighborhoods,
    observed_configurations as observed_configurations,
    reported_table as reported_table,
    rollout_logits as rollout_logits,
    rule_inference_loss as rule_inference_loss,
    true_table as true_table,
)
from ._nca import (
    GrowingNCA as GrowingNCA,
    alive_mask as alive_mask,
    damage as damage,
    draw_target as draw_target,
    nca_rollout as nca_rollout,
    perceive as perceive,
    rgba_loss as rgba_loss,
    seed_state as seed_state,
    to_rgb as to_rgb,
)
from ._patterns import (
    BLINKER as BLINKER,
    BLOCK as BLOCK,
    GLIDER as GLIDER,
    GOSPER_GUN as GOSPER_GUN,
    from_rle as from_rle,
    place as place,
)
from ._rules import (
    DAY_AND_NIGHT as DAY_AND_NIGHT,
    HIGHLIFE as HIGHLIFE,
    LIFE as LIFE,
    SEEDS as SEEDS,
    ElementaryRule as ElementaryRule,
    LifeLikeRule as LifeLikeRule,
    elementary_table as elementary_table,
    parse_rule as parse_rule,
)
from ._simulate import (
    AbstractBoundary as AbstractBoundary,
    AbstractLifeMethod as AbstractLifeMethod,
    BitPacked as BitPacked,
    Fixed as Fixed,
    Periodic as Periodic,
    RollSum as RollSum,
    elementary_step as elementary_step,
    life_step as life_step,
    neighbor_count as neighbor_count,
    pack_bits as pack_bits,
    packed_life_step as packed_life_step,
    run_elementary as run_elementary,
    run_life as run_life,
    single_cell as single_cell,
    unpack_bits as unpack_bits,
)
