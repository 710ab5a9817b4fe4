"""diffsim.parallel: meshes, sharded batches, data-parallel fit, the runner's --devices,
and two processes joined over loopback.

The device count is fixed when JAX starts, so the multi-device checks run in subprocesses
with `XLA_FLAGS=--xla_force_host_platform_device_count=N` (parallel_worker.py). Tolerance
for "the same results on 1 and 4 devices": float64, relative 1e-13 where a sum is split
across devices (the order of the reduction changes, nothing else); the ensemble's states,
where no reduction crosses devices, within 3e-12 absolute (XLA may vectorise a smaller
shard differently; measured equal); bitwise for a resume on a fixed device count.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from diffsim import parallel
from diffsim.runner import ConfigError, RunError, find_experiment, plan_run, run_experiment

HERE = Path(__file__).parent
WORKER = HERE / "parallel_worker.py"
REDUCTION_RTOL = 1e-13


def _env(devices: int, **extra) -> dict:
    env = dict(os.environ)
    flags = " ".join(
        f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform" not in f
    )
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env.update(extra)
    return env


def _result(proc: subprocess.CompletedProcess) -> dict:
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise AssertionError(f"worker failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")


# --- in this process (one device) -----------------------------------------------------


def test_distributed_config_from_arguments_and_environment():
    env = {
        "DIFFSIM_COORDINATOR": "127.0.0.1:1234",
        "DIFFSIM_NUM_PROCESSES": "2",
        "DIFFSIM_PROCESS_ID": "1",
        "DIFFSIM_LOCAL_DEVICES": "2",
    }
    got = parallel.distributed_config(env=env)
    assert got == parallel.DistributedConfig("127.0.0.1:1234", 2, 1, 2)
    # arguments win over the environment
    assert parallel.distributed_config(process_id=0, env=env).process_id == 0
    assert parallel.distributed_config(env={}) is None  # no coordinator: one process
    assert parallel.initialize(env={}) is None  # and initialize does nothing
    bad = [
        ({"DIFFSIM_COORDINATOR": "localhost"}, "host:port"),
        ({"DIFFSIM_COORDINATOR": "h:1"}, "needs num_processes"),
        ({**env, "DIFFSIM_NUM_PROCESSES": "two"}, "DIFFSIM_NUM_PROCESSES must be an integer"),
        ({**env, "DIFFSIM_NUM_PROCESSES": "0"}, "num_processes must be >= 1"),
        ({**env, "DIFFSIM_PROCESS_ID": "2"}, r"process_id must be in 0 \.\. 1, got 2"),
        ({**env, "DIFFSIM_LOCAL_DEVICES": "0"}, "local_devices must be >= 1"),
        ({"DIFFSIM_PROCESS_ID": "0"}, "without a coordinator"),
    ]
    for e, message in bad:
        with pytest.raises(ValueError, match=message):
            parallel.distributed_config(env=e)
    with pytest.raises(ValueError, match="initialize: coordinator must be host:port"):
        parallel.initialize("no port", 2, 0)


def test_prepare_devices_edits_xla_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_foo=1 --xla_force_host_platform_device_count=8")
    parallel.prepare_devices(3, deterministic=True)
    assert os.environ["XLA_FLAGS"] == (
        "--xla_foo=1 --xla_force_host_platform_device_count=3 --xla_gpu_deterministic_ops=true"
    )
    parallel.prepare_devices(None, deterministic=True)  # nothing twice
    assert os.environ["XLA_FLAGS"].count("deterministic") == 1
    with pytest.raises(ValueError, match="devices must be an int >= 1, got 0"):
        parallel.prepare_devices(0)


def test_make_mesh_and_shard_on_one_device():
    mesh = parallel.make_mesh()
    assert mesh.axis_names == (parallel.BATCH,) and mesh.size == jax.device_count()
    n = jax.device_count() + 1
    with pytest.raises(ValueError, match=f"xla_force_host_platform_device_count={n}"):
        parallel.make_mesh(n)
    with pytest.raises(ValueError, match="devices must be >= 1, got 0"):
        parallel.make_mesh(0)
    x = jax.numpy.arange(6.0).reshape(3, 2)
    y = parallel.gather(parallel.shard_batch({"x": x}, mesh))
    assert (y["x"] == x).all()
    with pytest.raises(ValueError, match=r"got shape \(\) at \['s'\]"):
        parallel.shard_batch({"s": jax.numpy.zeros(())}, mesh)


def test_parallel_config_table(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('experiment = "ode_stability"\n[parallel]\ndevices = 2\n')
    plan = plan_run(cfg)
    assert plan.parallel.devices == 2 and plan.parallel.deterministic
    assert plan_run(cfg, devices=4).parallel.devices == 4  # --devices wins
    with pytest.raises(RunError, match="--devices: expected an integer >= 1, got 0"):
        plan_run(cfg, devices=0)
    cfg.write_text('experiment = "ode_stability"\n[parallel]\ndevice = 2\n')
    with pytest.raises(ConfigError, match="unknown key 'parallel.device'; did you mean"):
        plan_run(cfg)


def test_cli_devices_after_jax_started_names_the_flag(tmp_path, monkeypatch, capsys):
    from diffsim.cli import main

    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    jax.devices()  # the backend has started in this process
    n = jax.device_count() + 1
    rc = main(
        ["run", "configs/ode_stability.toml", "--devices", str(n), "--out", str(tmp_path / "r")]
    )
    assert rc == 2
    assert f"XLA_FLAGS=--xla_force_host_platform_device_count={n}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before the run directory exists


# --- subprocesses with forced host devices ------------------------------------------


# Slow tier (18 s): the default tier keeps "same results on 1 and N devices" through the
# CLI (`--devices 2` in a fresh process).
@pytest.mark.slow
def test_same_results_on_1_and_4_devices_and_resume(tmp_path):
    """An ODE ensemble and a data-parallel fit (and its resume) on a 4-device mesh."""
    proc = subprocess.run(
        [sys.executable, str(WORKER), "devices", str(tmp_path)],
        env=_env(4),
        capture_output=True,
        text=True,
        timeout=600,
    )
    r = _result(proc)
    # no reduction crosses devices; a shard's vectorisation may differ in the last bit
    assert r["states_diff"] < REDUCTION_RTOL * 30
    assert r["mean_rel_diff"] < REDUCTION_RTOL
    assert r["fit_rel_diff"] < REDUCTION_RTOL and r["loss_rel_diff"] < REDUCTION_RTOL
    assert r["resume_bitwise"] and r["resume_losses_bitwise"]  # fixed device count
    assert r["on1_rel_diff"] < REDUCTION_RTOL and r["on1_losses_first10_equal"]
    assert "must divide the 4 devices; got shape (6, 3)" in r["shard_error"]


def test_cli_devices_sets_the_flag_before_jax_starts(tmp_path):
    """`diffsim run --devices 2` in a fresh process: JAX sees 2 CPU devices, fit trains on
    them, and the experiment gives what it gives on one device (run here, in-process)."""
    (tmp_path / "c.toml").write_text('experiment = "parallel_experiment:run"\nsteps = 3\n')
    env = _env(1)
    env.pop("XLA_FLAGS")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "diffsim.cli",
            "run",
            str(tmp_path / "c.toml"),
            "--devices",
            "2",
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["devices"] == 2 and metrics["jax_devices"] == 2
    assert metrics["params_devices"] == 2
    assert "[parallel]\ndevices = 2" in (tmp_path / "run" / "config.toml").read_text()
    assert "devices: 2 (mesh over cpu)" in (tmp_path / "run" / "log.txt").read_text()
    exp = find_experiment("parallel_experiment:run")
    one, _ = run_experiment(exp, exp.config_cls(steps=3), tmp_path / "one", quiet=True)
    assert one["devices"] == 1 and one["params_devices"] == 1
    assert abs(metrics["loss"] - one["loss"]) <= REDUCTION_RTOL * abs(one["loss"])
    assert abs(metrics["w0"] - one["w0"]) <= REDUCTION_RTOL * abs(one["w0"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_over_loopback(tmp_path):
    """Two processes x 2 forced CPU devices, joined by `initialize` (gloo collectives):
    the ensemble and a data-parallel fit over the 4 global devices equal one process's."""
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "multihost", str(tmp_path)],
            env=_env(
                2,
                DIFFSIM_COORDINATOR=f"127.0.0.1:{port}",
                DIFFSIM_NUM_PROCESSES="2",
                DIFFSIM_PROCESS_ID=str(i),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = [
        _result(subprocess.CompletedProcess(p.args, p.returncode, o, e))
        for p, (o, e) in zip(procs, outs)
    ]
    ref = _result(
        subprocess.run(
            [sys.executable, str(WORKER), "reference", str(tmp_path)],
            env=_env(1),
            capture_output=True,
            text=True,
            timeout=300,
        )
    )
    import numpy as np

    for i, r in enumerate(results):
        assert r["process"] == i and r["processes"] == 2
        assert r["devices"] == 4 and r["local_devices"] == 2
        assert r["settings"] == [f"127.0.0.1:{port}", 2, i]
        assert np.array_equal(r["states"], ref["states"])  # every process has every state
        np.testing.assert_allclose(r["mean"], ref["mean"], rtol=REDUCTION_RTOL)
        np.testing.assert_allclose(r["params"], ref["params"], rtol=1e-12)
        np.testing.assert_allclose(r["losses"], ref["losses"], rtol=REDUCTION_RTOL)
    assert results[0]["params"] == results[1]["params"]  # replicated: identical
