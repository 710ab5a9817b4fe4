"""Hostile configs: every shipped config, mutated (types, bounds, non-finite values, unknown
keys, huge integers, bad paths, bad `module:function`, cut-off text), goes through the
CLI's validation (`diffsim run --check`): each outcome is exit 0, or one line and exit 2;
never a traceback, never a folder left behind."""

import contextlib
import io
import math
import os
import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from diffsim.cli import main
from diffsim.runner import to_toml

ROOT = Path(__file__).parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))

HOSTILE_VALUES = st.one_of(
    st.sampled_from(
        [
            math.nan,
            math.inf,
            -math.inf,
            10**30,
            -(10**30),
            2**63,
            -1,
            0,
            -1e300,
            1e300,
            "",
            "x",
            "/nonexistent/folder/file.npz",
            "../../etc/passwd",
            ":",
            ".rel:run",
            "a:b:c",
            "no_such_module:run",
            "os:getcwd",
            True,
            [],
            [1, "a"],
            {"k": 1},
        ]
    ),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers(-5, 5), max_size=4),
)


def _paths(data: dict, prefix=()):
    for k, v in data.items():
        yield (*prefix, k)
        if isinstance(v, dict):
            yield from _paths(v, (*prefix, k))


def _set(data: dict, path, value):
    d = data
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


@st.composite
def mutated_configs(draw):
    path = draw(st.sampled_from(CONFIGS))
    text = path.read_text()
    how = draw(st.sampled_from(["value", "value", "value", "unknown key", "cut", "two values"]))
    if how == "cut":
        return path.name, text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    data = tomllib.loads(text)
    keys = list(_paths(data))
    for _ in range(2 if how == "two values" else 1):
        if how == "unknown key":
            where = draw(
                st.sampled_from([()] + [k for k in keys if isinstance(_get(data, k), dict)])
            )
            _set(data, (*where, draw(st.sampled_from(["bogus", "seeed", "dtt", "lr_"]))), 1)
        else:
            _set(data, draw(st.sampled_from(keys)), draw(HOSTILE_VALUES))
    try:
        return path.name, to_toml(data)
    except Exception:  # a value TOML cannot write (e.g. a mixed list): write it by hand
        return path.name, text + f"\nzz_extra = {draw(st.integers())}\n"


def _get(data, path):
    for k in path:
        data = data[k]
    return data


def _check(name: str, text: str) -> int:
    """Runs `diffsim run --check` on the text in a fresh folder; asserts the contract."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = tmp / name
        cfg.write_text(text)
        out, err = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(tmp)  # `runs/`, a relative `model`, a user's module: all resolved here
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(["run", str(cfg), "--check", "--out", str(tmp / "out")])
        finally:
            os.chdir(cwd)
        assert rc in (0, 2), (name, text, err.getvalue())
        if rc == 2:
            lines = err.getvalue().strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in err.getvalue(), (text, lines)
        assert sorted(p.name for p in tmp.iterdir()) == [name], "validation left files behind"
        return rc


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_configs())
def test_mutated_configs_get_exit_0_or_one_line_and_exit_2(case):
    _check(*case)


@pytest.mark.slow
def test_every_key_of_every_shipped_config_refuses_hostile_values():
    """A deterministic sweep: every key of every config gets non-finite, huge and
    wrongly-typed values; the shipped config itself passes."""
    tried = refused = 0
    for path in CONFIGS:
        text = path.read_text()
        # Every shipped config is valid (potential_md needs the potential_train run first;
        # tests/experiments/test_configs.py checks that it says so).
        assert _check(path.name, text) == 0 or path.name == "potential_md.toml", path.name
        data = tomllib.loads(text)
        for key in _paths(data):
            if isinstance(_get(data, key), dict):
                continue
            for value in (math.nan, 10**30, "x", [1.5]):
                mutated = tomllib.loads(text)
                _set(mutated, key, value)
                tried += 1
                refused += _check(path.name, to_toml(mutated)) == 2
    print(f"{len(CONFIGS)} configs, {tried} mutated configs, {refused} refused")
    assert refused >= 0.9 * tried  # a few keys accept any string (e.g. a label)
