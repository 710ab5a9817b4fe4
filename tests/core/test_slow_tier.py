"""The slow tier's driver (tests/slow_tier.py): which failures count as a crashed process
(rerun once, reported) and which are test failures (never rerun)."""

import importlib.util
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "slow_tier", Path(__file__).resolve().parents[1] / "slow_tier.py"
)
assert spec is not None and spec.loader is not None
slow_tier = importlib.util.module_from_spec(spec)
sys.modules["slow_tier"] = slow_tier  # its dataclass looks itself up there
spec.loader.exec_module(slow_tier)


def test_an_assertion_failure_is_not_a_crash():
    out = "E       assert 1 == 2\nFAILED tests/x.py::test_a - assert 1 == 2\n1 failed in 1s"
    assert slow_tier.crashed(1, out) is None
    assert slow_tier.crashed(0, "1 passed") is None
    assert slow_tier.crashed(5, "no tests ran") is None


def test_signals_timeouts_and_interpreter_corruption_are_crashes():
    assert slow_tier.crashed(-11, "") == "killed by signal 11"
    assert slow_tier.crashed(3, "INTERNALERROR> x") == "pytest exit status 3"
    banner = "+" * 35 + " Timeout " + "+" * 36
    assert "Timeout" in slow_tier.crashed(1, f"tests/x.py {banner}\nStack of MainThread")
    corrupted = "E   SystemError: error return without exception set\n1 failed"
    assert "without exception" in slow_tier.crashed(1, corrupted)
    assert "MemoryError" in slow_tier.crashed(1, "E       MemoryError\n1 failed")
