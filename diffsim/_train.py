"""One optax training loop for every experiment that trains.

Deterministic by construction: the PRNG key of step i is `fold_in(key, i)`, and a batch
is a function of that key and i, so resuming from a checkpoint replays exactly the same
computation as an uninterrupted run (bitwise-equal final parameters).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._checkpoint import load_latest, previous_path, save_checkpoint
from ._results import result_repr

CHECKPOINT = "checkpoint.eqx"
logger = logging.getLogger("diffsim")
METRICS = "metrics.jsonl"


class FitResult(NamedTuple):
    """What `fit` gives back (printed short: shapes and scalars, not arrays)."""

    __repr__ = result_repr

    params: Any
    opt_state: Any
    history: list[dict]
    """One dict per logged step (`step`, `loss`, aux metrics, `eval_*` metrics)."""
    state: Any = None
    """The final training state, when `fit` was given one (`state=`)."""


def fit(
    loss_fn: Callable,
    params: Any,
    optimizer: optax.GradientTransformation,
    *,
    steps: int,
    key: jax.Array,
    batch_fn: Callable | None = None,
    eval_fn: Callable | None = None,
    eval_every: int = 0,
    log_every: int = 10,
    checkpoint_every: int = 0,
    directory: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_fn: Callable[[dict], bool] | None = None,
    state: Any = None,
    on_start: Callable[[int, list[dict]], None] | None = None,
    on_eval: Callable[[int, Any, dict], None] | None = None,
    mesh: Any = None,
) -> FitResult:
    """Gives parameters trained by `steps` optax updates of `loss_fn`.

    **Arguments:**

    - `loss_fn`: `loss_fn(params, batch, key) -> loss` or `-> (loss, aux)` with `aux` a
      dict of scalars. Differentiated with respect to the inexact arrays of `params`.
    - `params`: any pytree (e.g. an `eqx.Module`); non-array leaves stay fixed.
    - `optimizer`: an optax transformation (L-BFGS and other line-search optimisers
      work: `value`, `grad` and `value_fn` are passed to `update`).
    - `steps`: number of updates, >= 0.
    - `key`: PRNG key; step i uses `jax.random.fold_in(key, i)`.
    - `batch_fn`: `batch_fn(key, step) -> batch`, deterministic in its arguments;
      `None` passes `batch=None`.
    - `eval_fn`: `eval_fn(params, key) -> dict` of scalars, run every `eval_every`
      steps and at the end.
    - `log_every`: record `step`, `loss` and aux every this many steps (and the last).
    - `checkpoint_every`: write `directory/checkpoint.eqx` atomically every this many
      steps and at the end (0: only at the end, when `directory` is given); the one it
      replaces is kept as `checkpoint.prev.eqx`.
    - `directory`: where `metrics.jsonl` and the checkpoint go; `None` writes nothing.
    - `resume`: continue from `directory/checkpoint.eqx` if it exists; if it is corrupted
      (checksum), from `checkpoint.prev.eqx`, with a one-line warning on the `"diffsim"`
      logger.
    - `progress`: show a progress bar with the loss.
    - `stop_fn`: `stop_fn(record) -> bool` on each logged record; `True` stops early
      (early stopping); the stop is checkpointed like the end.
    - `state`: a pytree of arrays that every step updates but that is not trained (a
      sample pool, running statistics). With it, `loss_fn(params, batch, key, state)
      -> (loss, (aux, new_state))`; the state is checkpointed and resumed with the
      parameters, and returned as `FitResult.state`. No gradient flows into it.
    - `on_start`: `on_start(step, history)`, called once before the first update with
      the step training starts from (0, or the checkpointed step when resuming) and the
      records logged up to it (empty, or those kept from `metrics.jsonl`). A caller
      that tracks something across evaluations (the best validation loss) rebuilds it
      here, so a resumed run continues exactly as an uninterrupted one.
    - `on_eval`: `on_eval(step, params, record)`, called after each evaluation with the
      parameters just evaluated and the logged record (with its `eval_*` metrics),
      before `stop_fn`. For model selection: keep or save `params` when `record` is
      the best so far.
    - `mesh`: a `jax.sharding.Mesh` from `diffsim.parallel.make_mesh` to train
      data-parallel on (`None`: the one set by `diffsim.parallel.use_mesh`, as
      `diffsim run --devices N` does; none set, or one device: a single device as
      before). The batch from `batch_fn` is split along its leading axis across the
      devices (every array of it must have the batch first, and the device count must
      divide it: `ValueError` otherwise); parameters, optimiser state and `state` are
      replicated; the compiler partitions `loss_fn` and averages the gradients with its
      own all-reduce. Results equal the one-device run up to the order of the
      reductions across devices; checkpoints hold whole arrays, so a run may resume on
      another device count. With several processes (`diffsim.parallel.initialize`) only
      process 0 writes files.

    **Returns:** a `FitResult`.

    **Raises:** `ValueError` for bad arguments; `diffsim.CheckpointError` (one line) when
    resuming from checkpoints that are both corrupted or that do not match `params`;
    `FloatingPointError` if the loss becomes NaN or infinite (the last good checkpoint is
    kept).
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"fit: steps must be an int >= 0, got {steps!r}")
    for name, value in [
        ("log_every", log_every),
        ("eval_every", eval_every),
        ("checkpoint_every", checkpoint_every),
    ]:
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"fit: {name} must be an int >= 0, got {value!r}")
    if resume and directory is None:
        raise ValueError("fit: resume=True needs a directory")
    log_every = max(log_every, 1)

    optimizer = optax.with_extra_args_support(optimizer)
    diff, static = eqx.partition(params, eqx.is_inexact_array)
    opt_state = optimizer.init(diff)
    start = 0
    history: list[dict] = []
    directory = Path(directory) if directory is not None else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        ckpt = directory / CHECKPOINT
        if resume:  # a write cut short by a crash leaves its temporary file: drop it
            for stale in directory.glob(f".{CHECKPOINT}.*.tmp"):
                stale.unlink(missing_ok=True)
        if resume and (ckpt.exists() or previous_path(ckpt).exists()):
            (diff, opt_state, state), meta, note = load_latest(ckpt, (diff, opt_state, state))
            if note is not None:
                logger.warning(f"fit: {note}")
            start = int(meta["step"])
            history = _truncate_metrics(directory / METRICS, start)
        elif resume:  # killed before its first checkpoint: start over, dropping its records
            _truncate_metrics(directory / METRICS, 0)
        elif (directory / METRICS).exists() or ckpt.exists():
            raise FileExistsError(
                f"fit: {directory} already holds a training run; pass resume=True to "
                "continue it, or use a new directory"
            )

    if mesh is None:
        from .parallel import current_mesh

        mesh = current_mesh()
    sharded = mesh is not None and mesh.size > 1
    if mesh is not None and sharded:
        from .parallel import replicate

        diff, opt_state, state = replicate((diff, opt_state, state), mesh)

    if on_start is not None:
        on_start(start, list(history))
    threaded = state is not None

    def loss_and_aux(d, batch, k, st):
        if threaded:
            loss, (aux, new_st) = loss_fn(eqx.combine(d, static), batch, k, st)
            return loss, (aux, jax.lax.stop_gradient(new_st))
        out = loss_fn(eqx.combine(d, static), batch, k)
        if isinstance(out, tuple):
            return out[0], (out[1], None)
        return out, ({}, None)

    @eqx.filter_jit
    def update(d, opt_state, st, step):
        kb, kl = jax.random.split(jax.random.fold_in(key, step))
        batch = batch_fn(kb, step) if batch_fn is not None else None
        if sharded:
            batch = _split_batch(batch, mesh)
        (loss, (aux, new_st)), g = jax.value_and_grad(loss_and_aux, has_aux=True)(d, batch, kl, st)
        updates, opt_state = optimizer.update(
            g,
            opt_state,
            d,
            value=loss,
            grad=g,
            value_fn=lambda p: loss_and_aux(p, batch, kl, st)[0],
        )
        new_d = optax.apply_updates(d, updates)
        if sharded:  # the updated parameters stay whole on every device
            new_d, opt_state, new_st = _replicated((new_d, opt_state, new_st), mesh)
        return new_d, opt_state, new_st, loss, aux

    def evaluate(p, step):
        assert eval_fn is not None  # called only when there is one
        k = jax.random.fold_in(jax.random.fold_in(key, step), 2**31 - 1)
        return {f"eval_{n}": float(v) for n, v in eval_fn(p, k).items()}

    def checkpoint(d, s, st, step):
        if directory is not None and jax.process_index() == 0:
            save_checkpoint(directory / CHECKPOINT, (d, s, st), {"step": step}, keep_previous=True)

    bar = None
    if progress and steps > start:
        from ._progress import progress_bar

        bar = progress_bar(steps, initial=start, desc="train", unit="step")
    t0 = time.perf_counter()
    step = start
    try:
        while step < steps:
            new_diff, new_opt, new_state, loss, aux = update(
                diff, opt_state, state, jnp.asarray(step)
            )
            loss = float(loss)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"fit: loss is {loss} at step {step}; the last checkpoint was kept"
                )
            diff, opt_state, state = new_diff, new_opt, new_state
            step += 1
            record = None
            if step % log_every == 0 or step == steps:
                record = {"step": step, "loss": loss, **{n: float(v) for n, v in aux.items()}}
            evaluated = None
            if eval_every and (step % eval_every == 0 or step == steps):
                record = record or {"step": step, "loss": loss}
                if eval_fn is not None:
                    evaluated = eqx.combine(diff, static)
                    record.update(evaluate(evaluated, step))
            stop = False
            if record is not None:
                record["time"] = round(time.perf_counter() - t0, 4)
                history.append(record)
                _append(directory, record)
                if evaluated is not None and on_eval is not None:
                    on_eval(step, evaluated, record)
                stop = bool(stop_fn(record)) if stop_fn is not None else False
            if checkpoint_every and step % checkpoint_every == 0 or step == steps or stop:
                checkpoint(diff, opt_state, state, step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)  # redraw at its own pace
            if stop:
                break
        if step == start and directory is not None and not (directory / CHECKPOINT).exists():
            checkpoint(diff, opt_state, state, step)
    finally:
        if bar is not None:
            bar.close()
    return FitResult(eqx.combine(diff, static), opt_state, history, state)


def load_params(directory: str | os.PathLike, like: Any, optimizer=None, state=None) -> Any:
    """Gives the parameters saved by `fit` in `directory`, shaped like `like`.

    `optimizer` and `state` (a template) must be those given to `fit`.
    """
    diff, static = eqx.partition(like, eqx.is_inexact_array)
    if optimizer is None:
        raise ValueError("load_params: pass the optimizer used for training")
    opt_state = optax.with_extra_args_support(optimizer).init(diff)
    (diff, _, _), _, note = load_latest(Path(directory) / CHECKPOINT, (diff, opt_state, state))
    if note is not None:
        logger.warning(f"load_params: {note}")
    return eqx.combine(diff, static)


def _split_batch(batch: Any, mesh: Any) -> Any:
    from .parallel import batch_sharding
    from .parallel._mesh import _check_divides

    _check_divides(batch, mesh.size, "fit: batch_fn's batch")
    return jax.lax.with_sharding_constraint(batch, batch_sharding(mesh))


def _replicated(tree: Any, mesh: Any) -> Any:
    from jax.sharding import NamedSharding, PartitionSpec

    return jax.lax.with_sharding_constraint(tree, NamedSharding(mesh, PartitionSpec()))


def _append(directory: Path | None, record: dict) -> None:
    if directory is None or jax.process_index() != 0:
        return
    with open(directory / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _truncate_metrics(path: Path, step: int) -> list[dict]:
    """Keeps the records up to the checkpointed step; later ones will be replayed."""
    if not path.exists():
        return []
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by the interruption
            continue
        if record.get("step", 0) <= step:
            kept.append(record)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    os.replace(tmp, path)
    return kept
