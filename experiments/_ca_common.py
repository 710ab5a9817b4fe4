"""Shared helpers of the cellular-automata experiments: training stacks of rule networks."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import diffsim
from diffsim.automata import LocalRuleNet, rule_inference_loss


def init_stack(dims: int, n: int, channels: int, hidden: int, *, key) -> LocalRuleNet:
    """One independent `LocalRuleNet` per rule, stacked on a leading axis (for vmap)."""
    return eqx.filter_vmap(lambda k: LocalRuleNet(dims, channels, hidden, key=k))(
        jax.random.split(key, n)
    )


def stack_tables(models: LocalRuleNet) -> jax.Array:
    """The learned rule table of every model in a stack: `(n, 2^taps)`."""
    return eqx.filter_vmap(lambda m: m.table())(models)


def train_stack(
    models, data, truth, *, steps, lr, k, key, directory, resume, log_every, progress=True
):
    """Trains every rule's network at once with `diffsim.fit` (one compiled program).

    The summed loss gives each network the gradient of its own rule's loss; Adam is
    elementwise, so this is exactly independent training of each rule. The aux records
    which rules' read-off tables are exact at each logged step (`exact_<i>`).
    """
    data = jnp.asarray(data, jnp.float32)

    def loss_fn(m, batch, key):
        losses = eqx.filter_vmap(lambda mm, f: rule_inference_loss(mm, f, k=k))(m, data)
        exact = jnp.all(stack_tables(m) == truth, axis=1)
        aux = {f"exact_{i}": exact[i] for i in range(exact.shape[0])}
        aux["mean_loss"] = jnp.mean(losses)
        return jnp.sum(losses), aux

    result = diffsim.fit(
        loss_fn,
        models,
        optax.adam(lr),
        steps=steps,
        key=key,
        log_every=log_every,
        directory=directory,
        resume=resume,
        progress=progress,
    )
    return result


def steps_to_exact(history, n):
    """For each rule, the first logged step from which its table stayed exact (-1: never)."""
    first = [-1] * n
    for rec in history:
        for i in range(n):
            ok = rec.get(f"exact_{i}", 0.0) > 0.5
            if not ok:
                first[i] = -1
            elif first[i] < 0:
                first[i] = rec["step"]
    return first


def unstack(stacked, i: int):
    """The `i`-th model of a stack made by `init_stack`."""
    return jax.tree.map(lambda a: a[i] if eqx.is_array(a) else a, stacked)


@eqx.filter_jit
def hard_rollout(model: LocalRuleNet, x, steps: int):
    """The learned network run as a discrete automaton (logit > 0) for `steps` steps.

    Gives the states 0..steps stacked on a leading axis.
    """
    x = jnp.asarray(x, jnp.float32)

    def step(s, _):
        s2 = (model.logits(s) > 0).astype(jnp.float32)
        return s2, s2

    _, xs = diffsim.rollout(step, x, length=steps)
    return jnp.concatenate([x[None], xs])
