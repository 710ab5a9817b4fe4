"""The slow tier (`make test-slow`, run by CI after the default tier): one pytest process
per test file, `--jobs` files at a time, longest first.

Why not one `pytest -m slow -n 2`: in its first run inside CI (2026-12-01, fresh clone)
one long-lived xdist worker blocked forever waiting for an XLA CPU buffer, and the other
went on with a corrupted interpreter (`MemoryError` while tracing with 10 GB free, then
`SystemError: error return without exception set`), failing every test it ran after.
Two later runs of the same tier passed; the cause is not found. A process per file
keeps whatever state a file leaves (compiled programs, thread pools, native libraries
such as tblite) out of the next file, and bounds what one bad process can take down.

A file whose process *crashed* (killed by a signal or by pytest-timeout's thread
method, a Python fatal error, or the interpreter-corruption errors above) is run once
more and the summary says so loudly; a file with an ordinary test failure is never
rerun. Exit status 0 only when every file passed.

Progress: one line per finished file with the elapsed time and an ETA from
`slow_durations.json` (seconds per file on 2 cores, measured; `--record` rewrites it
from this run).

    python tests/slow_tier.py                 # the whole tier, 2 files at a time
    python tests/slow_tier.py tests/ode -j 1  # some of it
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DURATIONS = Path(__file__).with_name("slow_durations.json")
DEFAULT_ESTIMATE_S = 60.0
FILE_TIMEOUT_S = 2400  # a whole file; each test also has pytest's own 900 s timeout

# Output that means the process, not a test's assertion, went wrong.
CRASH_MARKERS = (
    "Fatal Python error",
    "error return without exception set",
    "MemoryError",
    "+ Timeout +",  # pytest-timeout's banner before it ends the process
    "INTERNALERROR",
)


@dataclass
class Outcome:
    path: str
    returncode: int
    seconds: float
    output: str
    attempts: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.returncode == 0


def _pytest(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *args]


def collect(paths: list[str]) -> dict[str, int]:
    """Slow test files under `paths`, with how many slow tests each has."""
    proc = subprocess.run(
        _pytest("--collect-only", "-q", "-m", "slow", "-n", "0", *paths),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode not in (0, 5):
        sys.stdout.write(proc.stdout + proc.stderr)
        raise SystemExit(f"slow_tier: collection failed (pytest exit {proc.returncode})")
    counts: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        if "::" in line and not line.startswith(" "):
            path = line.split("::", 1)[0]
            counts[path] = counts.get(path, 0) + 1
    return counts


def crashed(returncode: int, output: str) -> str | None:
    """Why a run counts as a crash (rerun once), or None for a pass or a real failure."""
    if returncode == 0:
        return None
    if returncode < 0:
        return f"killed by signal {-returncode}"
    if returncode not in (1, 5):
        return f"pytest exit status {returncode}"
    for marker in CRASH_MARKERS:
        if marker in output:
            return f"output contains {marker!r}"
    return None


def run_file(path: str, junit_dir: Path | None) -> tuple[int, float, str]:
    args = ["-m", "slow", "-n", "0", "--timeout-method=thread", "-o", "faulthandler_timeout=800"]
    if junit_dir is not None:
        args += ["--junitxml", str(junit_dir / (path.replace("/", "__") + ".xml"))]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            _pytest(*args, path),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=FILE_TIMEOUT_S,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        code = -9
    return code, time.perf_counter() - t0, out


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=["tests"])
    parser.add_argument("-j", "--jobs", type=int, default=2, help="files at a time (2)")
    parser.add_argument("--record", action="store_true", help=f"rewrite {DURATIONS.name}")
    parser.add_argument("--junit-dir", type=Path, help="one JUnit XML file per test file")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    counts = collect(args.paths)
    if not counts:
        print("slow_tier: no slow tests under", " ".join(args.paths))
        return 0
    try:
        known = {str(k): float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError):
        known = {}
    estimate = {p: known.get(p, DEFAULT_ESTIMATE_S) for p in counts}
    order = sorted(counts, key=lambda p: -estimate[p])  # longest first: balanced slots
    if args.junit_dir is not None:
        args.junit_dir.mkdir(parents=True, exist_ok=True)
    total_tests = sum(counts.values())
    print(
        f"slow tier: {total_tests} tests in {len(order)} files, {args.jobs} at a time "
        f"(estimated {_clock(sum(estimate.values()) / args.jobs)} on 2 cores)",
        flush=True,
    )

    lock = threading.Lock()
    start = time.perf_counter()
    left = dict(estimate)
    outcomes: list[Outcome] = []

    def one(path: str) -> Outcome:
        code, seconds, out = run_file(path, args.junit_dir)
        outcome = Outcome(path, code, seconds, out)
        why = crashed(code, out)
        if why is not None:
            outcome.attempts.append(why)
            with lock:
                print(f"RERUN {path}: the process crashed ({why}); its output:", flush=True)
                print(out, flush=True)
            code, seconds2, out = run_file(path, args.junit_dir)
            outcome = Outcome(path, code, seconds + seconds2, out, outcome.attempts)
        with lock:
            left.pop(path, None)
            outcomes.append(outcome)
            elapsed = time.perf_counter() - start
            eta = sum(left.values()) / args.jobs
            last = out.strip().splitlines()[-1] if out.strip() else "(no output)"
            mark = "ok  " if outcome.passed else "FAIL"
            print(
                f"[{len(outcomes):2d}/{len(order)}] {mark} {path} ({counts[path]} tests, "
                f"{outcome.seconds:.0f} s): {last.strip('= ')}  | elapsed {_clock(elapsed)}, "
                f"about {_clock(eta)} left",
                flush=True,
            )
            if not outcome.passed:
                print(out, flush=True)
        return outcome

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(one, order))

    wall = time.perf_counter() - start
    failed = [o for o in outcomes if not o.passed]
    rerun = [o for o in outcomes if o.attempts]
    print(
        f"\nslow tier: {len(outcomes) - len(failed)}/{len(outcomes)} files passed in {_clock(wall)}"
    )
    for o in rerun:
        state = "passed on the rerun" if o.passed else "failed again"
        print(f"  CRASHED ONCE, {state}: {o.path} ({'; '.join(o.attempts)})")
    for o in failed:
        print(f"  FAILED: {o.path}")
    if args.record:
        measured = {**known, **{o.path: round(o.seconds) for o in outcomes if o.passed}}
        DURATIONS.write_text(json.dumps(dict(sorted(measured.items())), indent=1) + "\n")
        print(f"recorded {DURATIONS.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
