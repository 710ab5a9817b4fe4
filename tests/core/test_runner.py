"""The experiment runner: configs, errors, run directories, training loop, resume."""

import json
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
from diffsim.runner import ConfigError, load_config, to_toml

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
TOY = "toy_experiment:run"


def cli(*args, cwd, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(HERE), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "diffsim.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write(tmp_path, text, name="cfg.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture(autouse=True)
def _toy_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


@pytest.mark.parametrize(
    "text, expected",
    [
        (f'experiment = "{TOY}"\nstpes = 3\n', ["unknown key 'stpes'", "did you mean 'steps'"]),
        (f'experiment = "{TOY}"\nsteps = "many"\n', ["key 'steps'", "'many'", "an integer"]),
        (f'experiment = "{TOY}"\nsteps = 0\n', ["key 'steps'", "got 0", ">= 1"]),
        (f'experiment = "{TOY}"\nsteps = 2.5\n', ["key 'steps'", "an integer"]),
        (f'experiment = "{TOY}"\n[optim]\nlr = -1.0\n', ["key 'optim.lr'", "> 0"]),
        (f'experiment = "{TOY}"\n[optim]\nname = "adma"\n', ["key 'optim.name'", "'adam'"]),
        (f'experiment = "{TOY}"\n[optim]\nlrr = 1.0\n', ["'optim.lrr'", "did you mean 'optim.lr'"]),
        (f'experiment = "{TOY}"\noptim = 3\n', ["key 'optim'", "a table"]),
        ('experiment = "ode_stabilty"\n', ["unknown experiment 'ode_stabilty'"]),
        ("steps = 3\n", ["missing required key 'experiment'"]),
        (f'experiment = "{TOY}"\nsteps = = 3\n', ["malformed TOML"]),
    ],
)
def test_config_errors(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


def test_config_types_and_overrides(tmp_path):
    path = write(tmp_path, f'experiment = "{TOY}"\nsteps = 7\n[optim]\nlr = 1\n')
    exp, cfg = load_config(path, ["optim.name=sgd", "width=8"])
    assert cfg.steps == 7 and cfg.width == 8
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float) and cfg.optim.name == "sgd"
    with pytest.raises(ConfigError, match="did you mean 'width'"):
        load_config(path, ["widht=8"])


def test_toml_roundtrip():
    import tomllib

    data = {"a": 1, "b": 2.5, "c": 'x"y', "d": [1, 2], "e": True, "t": {"u": {"v": 1e-8}}}
    assert tomllib.loads(to_toml(data)) == data


def test_cli_bad_config_exit_2_no_traceback_no_run_dir(tmp_path):
    path = write(tmp_path, f'experiment = "{TOY}"\nstpes = 3\n')
    result = cli("run", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "stpes" in result.stderr and str(path) in result.stderr
    assert not (tmp_path / "runs").exists()
    missing = cli("run", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert missing.returncode == 2 and "no such config file" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_cli_run_never_overwrites(tmp_path):
    path = write(tmp_path, f'experiment = "{TOY}"\nsteps = 5\n')
    first = cli("run", str(path), "--set", "width=4", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = cli("run", str(path), "--set", "width=4", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("cfg-") for r in runs)
    for r in runs:
        metrics = json.loads((r / "metrics.json").read_text())
        assert metrics["steps"] == 5
        assert (r / "config.toml").read_text().count("width = 4") == 1
        assert len((r / "metrics.jsonl").read_text().splitlines()) == 5
    assert "final_loss" in first.stdout  # the summary table
    out = cli("run", str(path), "--out", str(runs[0]), cwd=tmp_path)
    assert out.returncode == 2 and "never overwrites" in out.stderr


def test_same_seed_same_metrics(tmp_path):
    path = write(tmp_path, f'experiment = "{TOY}"\nsteps = 20\n')
    exp, cfg = load_config(path)
    m1, d1 = diffsim.runner.run_experiment(exp, cfg, tmp_path / "a", quiet=True)
    m2, d2 = diffsim.runner.run_experiment(exp, cfg, tmp_path / "b", quiet=True)
    assert m1["final_loss"] == m2["final_loss"]
    assert (d1 / "checkpoint.eqx").read_bytes() == (d2 / "checkpoint.eqx").read_bytes()


@pytest.mark.slow  # the slow tier also kills at 12 points (tests/core/test_checkpoints.py)
def test_sigkill_and_resume_is_bitwise_identical(tmp_path):
    """Kill a real run with SIGKILL midway; resuming gives the uninterrupted result."""
    steps = 300
    path = write(tmp_path, f'experiment = "{TOY}"\nsteps = {steps}\ndelay = 0.01\n')
    full = cli("run", str(path), "--out", str(tmp_path / "full"), cwd=tmp_path)
    assert full.returncode == 0, full.stderr

    env = dict(os.environ, PYTHONPATH=str(HERE), MPLBACKEND="Agg")
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "diffsim.cli", "run", str(path), "--out", str(run_dir)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    metrics = run_dir / "metrics.jsonl"
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 60:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "metrics.json").exists(), "the run finished before it was killed"
    killed_at = diffsim._checkpoint.read_metadata(run_dir / "checkpoint.eqx")["step"]
    assert 0 < killed_at < steps

    resumed = cli("run", "--resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    # The killed process left its lock behind; the resume took it over and said so.
    assert "took over the lock of process" in (run_dir / "log.txt").read_text()
    a = (tmp_path / "full" / "checkpoint.eqx").read_bytes()
    b = (run_dir / "checkpoint.eqx").read_bytes()
    assert a == b  # bitwise-equal parameters and optimiser state
    losses = lambda d: [
        json.loads(l)["loss"] for l in (d / "metrics.jsonl").read_text().splitlines()
    ]
    assert losses(run_dir) == losses(tmp_path / "full")
    again = cli("run", "--resume", str(run_dir), cwd=tmp_path)
    assert again.returncode == 2 and "already finished" in again.stderr


def test_fit_nan_loss_raises_and_keeps_checkpoint(tmp_path):
    def loss_fn(p, batch, key):
        return jnp.where(p > 3.0, jnp.nan, (p - 10.0) ** 2)

    with pytest.raises(FloatingPointError, match="step"):
        diffsim.fit(
            loss_fn,
            jnp.asarray(0.0),
            optax.sgd(0.1),
            steps=100,
            key=jax.random.key(0),
            directory=tmp_path,
            checkpoint_every=1,
            progress=False,
        )
    # sgd steps p: 0 -> 2 -> 3.6, where the loss is NaN; the checkpoint is the state at
    # step 2, before the failing update, and training can be resumed from it.
    (p, _, _), meta = diffsim.load_checkpoint(
        tmp_path / "checkpoint.eqx", (jnp.asarray(0.0), (), None)
    )
    assert meta["step"] == 2 and float(p) == pytest.approx(3.6)


def test_fit_refuses_to_overwrite(tmp_path):
    loss_fn = lambda p, b, k: jnp.sum(p**2)
    diffsim.fit(
        loss_fn,
        jnp.ones(2),
        optax.sgd(0.1),
        steps=3,
        key=jax.random.key(0),
        directory=tmp_path,
        progress=False,
    )
    with pytest.raises(FileExistsError, match="resume=True"):
        diffsim.fit(
            loss_fn,
            jnp.ones(2),
            optax.sgd(0.1),
            steps=3,
            key=jax.random.key(0),
            directory=tmp_path,
            progress=False,
        )


def test_fit_lbfgs_and_eval():
    A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
    loss_fn = lambda p, b, k: 0.5 * p @ A @ p - jnp.sum(p)
    out = diffsim.fit(
        loss_fn,
        jnp.zeros(2),
        optax.lbfgs(),
        steps=20,
        key=jax.random.key(0),
        eval_fn=lambda p, k: {"norm": jnp.linalg.norm(p)},
        eval_every=10,
        progress=False,
    )
    np.testing.assert_allclose(out.params, jnp.linalg.solve(A, jnp.ones(2)), rtol=1e-8)
    assert "eval_norm" in out.history[-1]


def test_checkpoint_atomic_and_validated(tmp_path):
    tree = {"a": jnp.arange(3.0), "b": (jnp.ones((2, 2)), jnp.int32(4))}
    path = diffsim.save_checkpoint(tmp_path / "c.eqx", tree, {"step": 3})
    loaded, meta = diffsim.load_checkpoint(path, tree)
    assert meta == {"step": 3}
    for x, y in zip(jax.tree.leaves(loaded), jax.tree.leaves(tree)):
        np.testing.assert_array_equal(x, y)
    assert [p.name for p in tmp_path.iterdir()] == ["c.eqx"]  # no temporary left behind
    with pytest.raises(ValueError, match="does not match"):
        diffsim.load_checkpoint(path, {"a": jnp.arange(4.0), "b": tree["b"]})
    (tmp_path / "bad.eqx").write_bytes(b"not a checkpoint\n")
    with pytest.raises(ValueError, match="not a diffsim checkpoint"):
        diffsim.load_checkpoint(tmp_path / "bad.eqx", tree)


def test_list(tmp_path):
    result = cli("list", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    for name in ["ode_stability", "adjoint_vs_bptt", "cartpole_swingup", "md_lj_fluid"]:
        assert name in lines and len(lines[name].split()) > 2  # name and a description


def test_resume_before_first_checkpoint_starts_clean(tmp_path):
    loss_fn = lambda p, b, k: jnp.sum((p - 3.0) ** 2)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n{"step": 2, "lo')
    out = diffsim.fit(
        loss_fn,
        jnp.zeros(2),
        optax.sgd(0.1),
        steps=4,
        key=jax.random.key(0),
        directory=tmp_path,
        resume=True,
        progress=False,
        log_every=1,
    )
    steps = [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4] and len(out.history) == 4


def test_fit_threads_state_and_resumes_it(tmp_path):
    """A non-trained state (e.g. a sample pool) is threaded, checkpointed and resumed."""

    def loss_fn(p, batch, key, pool):
        loss = jnp.sum((p - pool[0]) ** 2)
        return loss, ({"pool_mean": jnp.mean(pool)}, pool + 0.5 * (p[None] - pool))

    kw = dict(steps=12, key=jax.random.key(0), progress=False, checkpoint_every=4)
    full = diffsim.fit(
        loss_fn,
        jnp.ones(2),
        optax.adam(0.1),
        state=jnp.zeros((3, 2)),
        directory=tmp_path / "full",
        **kw,
    )
    assert full.state.shape == (3, 2) and "pool_mean" in full.history[-1]
    half = diffsim.fit(
        loss_fn,
        jnp.ones(2),
        optax.adam(0.1),
        state=jnp.zeros((3, 2)),
        directory=tmp_path / "part",
        **{**kw, "steps": 6},
    )
    assert half.history[-1]["step"] == 6
    resumed = diffsim.fit(
        loss_fn,
        jnp.ones(2),
        optax.adam(0.1),
        state=jnp.zeros((3, 2)),
        directory=tmp_path / "part",
        resume=True,
        **kw,
    )
    np.testing.assert_array_equal(resumed.params, full.params)
    np.testing.assert_array_equal(resumed.state, full.state)
    # Through fit itself: plain SGD, two steps worked by hand. The parameters move by
    # -lr * d loss / d p only (no gradient flows into the state), and the state takes the
    # loss's own update, computed with the parameters before each step.
    sgd = diffsim.fit(
        loss_fn,
        jnp.ones(2),
        optax.sgd(0.1),
        state=jnp.zeros((3, 2)),
        steps=2,
        key=jax.random.key(0),
        progress=False,
    )
    p, pool = 1.0, 0.0
    for _ in range(2):
        p, pool = p - 0.1 * 2 * (p - pool), pool + 0.5 * (p - pool)
    np.testing.assert_allclose(sgd.params, jnp.full(2, p), rtol=1e-12)  # 0.74
    np.testing.assert_allclose(sgd.state, jnp.full((3, 2), pool), rtol=1e-12)  # 0.65
