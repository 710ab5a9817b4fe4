"""Checkpoints survive crashes and corruption: the previous one is kept, a corrupted latest
falls back to it, a resume that cannot read either is one line and exit 2, and a run
killed anywhere (mid-write included) resumes to a bitwise-identical result."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import diffsim
from diffsim._checkpoint import previous_path, read_metadata

HERE = Path(__file__).parent
TOY = "toy_experiment:run"


def _env():
    return dict(os.environ, PYTHONPATH=str(HERE), MPLBACKEND="Agg")


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "diffsim.cli", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _fit(directory, steps, resume=False):
    def loss_fn(p, batch, key):
        return jnp.sum((p - batch) ** 2)

    return diffsim.fit(
        loss_fn,
        jnp.zeros(3),
        optax.adam(0.1),
        steps=steps,
        key=jax.random.key(0),
        batch_fn=lambda k, step: jax.random.normal(k, (3,)),
        checkpoint_every=10,
        directory=directory,
        resume=resume,
        progress=False,
    )


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def test_previous_checkpoint_is_kept_and_used_when_the_latest_is_corrupted(tmp_path, caplog):
    full = _fit(tmp_path / "full", 50)
    run = tmp_path / "run"
    _fit(run, 30)
    latest, prev = run / "checkpoint.eqx", previous_path(run / "checkpoint.eqx")
    assert read_metadata(latest)["step"] == 30 and read_metadata(prev)["step"] == 20
    _flip(latest, len(latest.read_bytes()) // 2)
    with caplog.at_level(logging.WARNING, logger="diffsim"):
        resumed = _fit(run, 50, resume=True)
    notes = [r.getMessage() for r in caplog.records if r.name == "diffsim"]
    assert len(notes) == 1 and "checkpoint.prev.eqx" in notes[0] and "\n" not in notes[0]
    # Replaying steps 20..50 from the previous checkpoint gives the uninterrupted result.
    assert bool(jnp.all(resumed.params == full.params))
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]


def test_both_checkpoints_corrupted_is_one_error(tmp_path):
    _fit(tmp_path, 30)
    for path in (tmp_path / "checkpoint.eqx", tmp_path / "checkpoint.prev.eqx"):
        _flip(path, 100)
    with pytest.raises(diffsim.CheckpointError, match="previous one is unusable too") as info:
        _fit(tmp_path, 50, resume=True)
    assert "\n" not in str(info.value) and info.value.corrupted


def test_a_changed_model_is_not_mistaken_for_corruption(tmp_path):
    _fit(tmp_path, 30)
    like = (jnp.zeros(4), optax.adam(0.1).init(jnp.zeros(4)), None)
    with pytest.raises(diffsim.CheckpointError, match="does not match") as info:
        diffsim.load_latest(tmp_path / "checkpoint.eqx", like)
    assert not info.value.corrupted  # no fallback: the previous one would not match either


def test_a_crash_between_the_two_renames_resumes_from_the_previous(tmp_path):
    _fit(tmp_path, 30)
    (tmp_path / "checkpoint.eqx").unlink()  # what a kill after the first rename leaves
    tree, meta, note = diffsim.load_latest(
        tmp_path / "checkpoint.eqx", (jnp.zeros(3), optax.adam(0.1).init(jnp.zeros(3)), None)
    )
    assert meta["step"] == 20 and "missing" in note


def test_resume_with_unreadable_checkpoints_exits_2_in_one_line(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'experiment = "{TOY}"\nsteps = 30\nfail_at = 25\n')
    run_dir = tmp_path / "run"
    first = _cli("run", str(cfg), "--out", str(run_dir), "--quiet", cwd=tmp_path)
    assert first.returncode == 1 and "toy failure" in first.stderr
    for path in (run_dir / "checkpoint.eqx", run_dir / "checkpoint.prev.eqx"):
        path.write_bytes(path.read_bytes()[:-7])  # truncated
    resumed = _cli("run", "--resume", str(run_dir), "--quiet", cwd=tmp_path)
    assert resumed.returncode == 2, resumed.stderr
    lines = resumed.stderr.strip().splitlines()
    assert len(lines) == 1 and "checkpoint.eqx" in lines[0] and "Traceback" not in resumed.stderr


def _kill_and_resume(tmp_path, cfg, reference: bytes, *, lines: int | None, mid_write: bool):
    run_dir = tmp_path / f"run-{lines}-{mid_write}-{time.monotonic_ns()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "diffsim.cli", "run", str(cfg), "--out", str(run_dir), "--quiet"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    metrics = run_dir / "metrics.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if mid_write:
            if any(run_dir.glob(".checkpoint.eqx.*.tmp")):
                break
        elif metrics.exists() and len(metrics.read_text().splitlines()) >= lines:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "metrics.json").exists(), "the run finished before it was killed"
    if mid_write:
        assert any(run_dir.glob(".checkpoint.eqx.*.tmp")), "not killed during a write"
    resumed = _cli("run", "--resume", str(run_dir), "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (run_dir / "checkpoint.eqx").read_bytes() == reference


@pytest.mark.slow
def test_sigkill_at_twelve_points_resumes_bitwise_every_time(tmp_path):
    """8 kills at random steps and 4 during a checkpoint write; each run is resumed and its
    final checkpoint compared byte for byte with an uninterrupted run's."""
    steps = 200
    text = f'experiment = "{TOY}"\nsteps = {steps}\ncheckpoint_every = 5\n'
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(text + "delay = 0.005\nwrite_delay = 0.05\n")
    full = _cli("run", str(cfg), "--out", str(tmp_path / "full"), "--quiet", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    reference = (tmp_path / "full" / "checkpoint.eqx").read_bytes()
    rng = np.random.default_rng(0)
    for lines in sorted(rng.integers(2, steps - 20, size=8)):
        _kill_and_resume(tmp_path, cfg, reference, lines=int(lines), mid_write=False)
    for _ in range(4):
        _kill_and_resume(tmp_path, cfg, reference, lines=None, mid_write=True)
