"""fit's hooks: `on_start` (where training starts, the history so far) and `on_eval`
(the parameters of each evaluation), used for model selection across a resume."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import diffsim


def _loss(p, batch, key):
    return jnp.sum((p - 3.0) ** 2)


def _run(directory, steps, calls, resume=False):
    return diffsim.fit(
        _loss,
        jnp.zeros(2),
        optax.sgd(0.1),
        steps=steps,
        key=jax.random.key(0),
        eval_fn=lambda p, k: {"dist": jnp.linalg.norm(p - 3.0)},
        eval_every=2,
        log_every=1,
        directory=directory,
        resume=resume,
        progress=False,
        on_start=lambda step, history: calls.append(("start", step, len(history))),
        on_eval=lambda step, p, record: calls.append(("eval", step, p, record)),
    )


def test_on_eval_gets_the_evaluated_parameters_and_record():
    calls = []
    out = _run(None, 6, calls)
    assert calls[0] == ("start", 0, 0)
    evals = calls[1:]
    assert [c[1] for c in evals] == [2, 4, 6]
    for _, step, p, record in evals:
        assert record["step"] == step and record in out.history
        np.testing.assert_allclose(record["eval_dist"], float(jnp.linalg.norm(p - 3.0)))
    np.testing.assert_array_equal(evals[-1][2], out.params)


def test_on_start_hands_back_the_resumed_step_and_history(tmp_path):
    full_calls, part_calls, resumed_calls = [], [], []
    full = _run(tmp_path / "full", 8, full_calls)
    _run(tmp_path / "part", 4, part_calls)
    resumed = _run(tmp_path / "part", 8, resumed_calls, resume=True)
    assert resumed_calls[0] == ("start", 4, 4)  # 4 records (log_every=1) kept
    # Only the evaluations after the resumed step are run again, with the same values.
    assert [c[1] for c in resumed_calls[1:]] == [6, 8]
    for a, b in zip(full_calls[-2:], resumed_calls[1:]):
        assert a[3]["eval_dist"] == b[3]["eval_dist"]
    np.testing.assert_array_equal(resumed.params, full.params)
