"""Run directories survive races, concurrent resumes, filesystem errors and failures."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diffsim.runner import (
    LOCK_FILE,
    ConfigError,
    RunError,
    claim_run,
    execute,
    find_experiment,
    plan_run,
)

HERE = Path(__file__).parent
TOY = "toy_experiment:run"


@pytest.fixture(autouse=True)
def _toy_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def _popen(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(HERE), MPLBACKEND="Agg")
    return subprocess.Popen(
        [sys.executable, "-m", "diffsim.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _config(tmp_path, text):
    path = tmp_path / "cfg.toml"
    path.write_text(f'experiment = "{TOY}"\n{text}')
    return path


def test_two_runs_into_one_out_exactly_one_proceeds(tmp_path):
    cfg = _config(tmp_path, "steps = 30\ndelay = 0.01\n")
    out = tmp_path / "shared"
    procs = [_popen("run", str(cfg), "--out", str(out), "--quiet", cwd=tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "Traceback" not in loser and len(loser.strip().splitlines()) == 1
    assert ("in use" in loser) or ("not empty" in loser)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 30
    assert not (out / LOCK_FILE).exists()
    assert json.loads((out / "status.json").read_text())["status"] == "finished"


def test_claim_is_exclusive_in_process(tmp_path):
    exp = find_experiment(TOY)
    plan = plan_run(_config(tmp_path, "steps = 2\n"), out=tmp_path / "o")
    run = claim_run(plan, quiet=True)
    assert (run.dir / LOCK_FILE).exists()
    with pytest.raises(RunError, match="in use by a running process"):
        claim_run(plan, quiet=True)
    metrics = execute(plan, run)
    assert metrics["steps"] == 2 and exp.name == TOY
    assert not (run.dir / LOCK_FILE).exists()
    with pytest.raises(RunError, match="not empty"):
        plan_run(_config(tmp_path, "steps = 2\n"), out=tmp_path / "o")


def test_stale_lock_is_taken_over_with_a_note(tmp_path):
    cfg = _config(tmp_path, "steps = 3\n")
    out = tmp_path / "run"
    plan = plan_run(cfg, out=out)
    run = claim_run(plan, quiet=True)
    # A process that died while holding the lock: write a lock naming a dead pid.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock = json.loads((out / LOCK_FILE).read_text())
    lock["pid"] = int(dead.stdout)
    (out / LOCK_FILE).write_text(json.dumps(lock))
    (out / "config.toml").write_text(f'experiment = "{TOY}"\nsteps = 3\n')
    resumed = plan_run(resume=out)
    run = claim_run(resumed, quiet=True)
    execute(resumed, run)
    assert "took over the lock of process" in (out / "log.txt").read_text()


@pytest.mark.parametrize("where", ["file", "under_file", "runs_file"])
def test_filesystem_errors_are_one_line_before_any_work(tmp_path, where):
    cfg = _config(tmp_path, "steps = 2\n")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    kwargs = {
        "file": {"out": a_file},
        "under_file": {"out": a_file / "run"},
        "runs_file": {"runs": a_file},
    }[where]
    with pytest.raises(RunError, match="a_file"):
        plan_run(cfg, **kwargs)


def test_cli_filesystem_error_exit_2(tmp_path):
    cfg = _config(tmp_path, "steps = 2\n")
    (tmp_path / "a_file").write_text("x")
    p = _popen("run", str(cfg), "--out", str(tmp_path / "a_file" / "run"), cwd=tmp_path)
    assert p.wait(timeout=120) == 2
    err = p.stderr.read()
    assert "Traceback" not in err and "is a file, not a folder" in err


def test_failed_run_records_status_and_traceback(tmp_path):
    cfg = _config(tmp_path, "steps = 10\nfail_at = 4\n")
    p = _popen("run", str(cfg), "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert p.wait(timeout=120) == 1
    err = p.stderr.read()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "toy failure at step 4" in err and "log.txt" in err
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status == {**status, "status": "failed", "reason": "RuntimeError: toy failure at step 4"}
    assert "Traceback" in (tmp_path / "r" / "log.txt").read_text()
    assert not (tmp_path / "r" / LOCK_FILE).exists()


def test_running_run_refuses_resume_and_sigint_names_the_directory(tmp_path):
    cfg = _config(tmp_path, "steps = 400\ndelay = 0.01\n")
    out = tmp_path / "run"
    proc = _popen("run", str(cfg), "--out", str(out), "--quiet", cwd=tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline and not (out / "checkpoint.eqx").exists():
        time.sleep(0.05)
    second = _popen("run", "--resume", str(out), cwd=tmp_path)
    assert second.wait(timeout=120) == 2
    assert "in use by a running process" in second.stderr.read()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    err = proc.stderr.read()
    assert f"diffsim run --resume {out}" in err and "RUN_DIR" not in err
    assert json.loads((out / "status.json").read_text())["status"] == "interrupted"
    assert not (out / LOCK_FILE).exists()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("seed = 123456789012345678901234567890\n", "fits in 64 bits"),
        ("[optim]\nlr = inf\n", "finite"),
        ("[optim]\nlr = nan\n", "finite"),
    ],
)
def test_values_that_would_fail_later_are_refused_now(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        plan_run(_config(tmp_path, text))


def test_every_flipped_byte_of_a_checkpoint_is_detected(tmp_path):
    import jax.numpy as jnp
    import numpy as np

    import diffsim

    tree = {"w": jnp.arange(64.0), "b": jnp.ones(3)}
    path = diffsim.save_checkpoint(tmp_path / "c.eqx", tree, {"step": 20})
    good = path.read_bytes()
    assert (path.stat().st_mode & 0o777) == (0o666 & ~diffsim._checkpoint._UMASK)
    rng = np.random.default_rng(0)
    offsets = rng.choice(len(good), size=200, replace=False)
    for offset in offsets:
        bad = bytearray(good)
        bad[offset] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(bad))
        with pytest.raises(ValueError, match="c.eqx"):
            diffsim.load_checkpoint(path, tree)
    for cut in (1, len(good) // 2, len(good) - 1):
        path.write_bytes(good[:cut])
        with pytest.raises(ValueError, match="c.eqx"):
            diffsim.load_checkpoint(path, tree)
    path.write_bytes(good)
    loaded, meta = diffsim.load_checkpoint(path, tree)
    assert meta == {"step": 20} and bool(jnp.all(loaded["w"] == tree["w"]))
