"""Biologically plausible credit assignment, measured against backprop.

A network of value neurons and error neurons that settles by minimising its prediction
error, then changes each weight by presynaptic activity times a locally available error:

- `MLP` (a chain of `Layer`s): value nodes `activities`, error nodes `errors`, the energy
  F = 1/2 sum ||e_l||^2; `local_updates` gives every layer's Hebbian change
  outer(err, f(pre)) from that layer's (pre, err) alone.
- Predictive coding inference as a `diffsim.rollout`: `infer` (Whittington & Bogacz
  2017) with `FixedIterations(n)` or `UntilConverged(tol)`; `infer_fixed_prediction`
  (Millidge et al. 2022) and `zero_divergence_signals` (Song et al. 2020), both exactly
  backprop; `graph_pc_gradients` on any `ComputationGraph` of `Node`s.
- Rules as values: `Backprop()`, `PredictiveCoding(rate, inference)`,
  `FixedPredictionPC()`, `ZeroDivergencePC()`, `FeedbackAlignment(net, key=)` (Lillicrap
  et al. 2016), `DirectFeedbackAlignment(net, key=)` (Nokland 2016); `rule_gradients`
  gives a rule's descent direction, `rule_loss` a loss whose gradient it is (for
  `diffsim.fit`); `cosine_similarity`, `relative_error` and `accuracy` measure them.
"""

# ruff: noqa: F722  (jaxtyping shape strings are not forward references)

from ._graph import (
    ComputationGraph as ComputationGraph,
    GraphInference as GraphInference,
    Node as Node,
    graph_pc_gradients as graph_pc_gradients,
)
from ._inference import (
    AbstractInference as AbstractInference,
    FixedIterations as FixedIterations,
    Inference as Inference,
    UntilConverged as UntilConverged,
    infer as infer,
    infer_fixed_prediction as infer_fixed_prediction,
    value_gradients as value_gradients,
    zero_divergence_signals as zero_divergence_signals,
)
from ._network import (
    MLP as MLP,
    Layer as Layer,
    derivative as derivative,
    local_updates as local_updates,
    mse_loss as mse_loss,
)
from ._rules import (
    AbstractRule as AbstractRule,
    Backprop as Backprop,
    DirectFeedbackAlignment as DirectFeedbackAlignment,
    FeedbackAlignment as FeedbackAlignment,
    FixedPredictionPC as FixedPredictionPC,
    PredictiveCoding as PredictiveCoding,
    ZeroDivergencePC as ZeroDivergencePC,
    accuracy as accuracy,
    cosine_similarity as cosine_similarity,
    relative_error as relative_error,
    rule_gradients as rule_gradients,
    rule_loss as rule_loss,
)
