"""Compilation for command-line runs: JAX's persistent cache, and long compilations
announced while they happen.

The cache keeps every compiled program that took more than `MIN_COMPILE_S` to compile,
so a second run of the same config skips most compilation. Its folder is, in order:
`diffsim run --compile-cache DIR`, the environment variable `DIFFSIM_COMPILE_CACHE`,
`$XDG_CACHE_HOME/diffsim/jax` (by default `~/.cache/diffsim/jax`). `--no-compile-cache`
or `DIFFSIM_COMPILE_CACHE=off` switches it off. Library users (notebooks) are never
affected: only the CLI turns it on.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

CACHE_ENV = "DIFFSIM_COMPILE_CACHE"
MIN_COMPILE_S = 0.5
"""Programs that compile faster than this are not worth a disk read."""
ANNOUNCE_AFTER_S = 5.0
"""A compilation still running after this long is announced (once per function)."""
_OFF = ("", "0", "off", "false", "no", "none")
# JAX records this event with the start time when an XLA compilation begins, and its
# duration when it ends (public `jax.monitoring` listeners).
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def compile_cache_dir(option: str | os.PathLike | None = None) -> Path | None:
    """Gives the persistent compilation cache folder, or `None` when switched off.

    `option` is the CLI's `--compile-cache` value (`None`: not given; `"off"`: off).
    """
    if option is not None:
        value = str(option)
    else:
        value = os.environ.get(CACHE_ENV)
        if value is None:
            base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join("~", ".cache")
            return Path(base).expanduser() / "diffsim" / "jax"
    if value.strip().lower() in _OFF:
        return None
    return Path(value).expanduser()


def enable_compile_cache(directory: Path | None) -> Path | None:
    """Turns on JAX's persistent compilation cache in `directory` (for this process).

    Gives the folder, or `None` when `directory` is `None` or cannot be created (a
    read-only home: the run goes on without the cache).
    """
    if directory is None:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


class CompileWatch:
    """Announces XLA compilations that run longer than `after` seconds, once per function.

    A background thread looks once a second; the listener records when each compilation
    starts and ends. `say` receives the lines ("compiling ilqr_step ... (5 s so far)",
    then "compiled ilqr_step in 12.3 s").

    With `history` (a JSON file), the announcement says how long the same function took
    to compile last time ("about 12 s last time"), and the durations measured now are
    written there on exit (atomically; an unreadable file is ignored and rewritten).
    """

    def __init__(
        self,
        say: Callable[[str], None],
        after: float = ANNOUNCE_AFTER_S,
        every: float = 1.0,
        history: Path | None = None,
    ):
        self.say = say
        self.history = history
        self.previous: dict[str, float] = _read_history(history)
        self.after = after
        self.every = every
        self._active: dict[int, tuple[str, float]] = {}
        self._announced: set[str] = set()
        self._shown: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.durations: list[tuple[str, float]] = []

    def _on_scalar(self, event: str, value: float, **kwargs) -> None:
        if event == _COMPILE_EVENT:
            with self._lock:
                self._active[threading.get_ident()] = (str(kwargs.get("fun_name", "?")), value)

    def _on_duration(self, event: str, duration_secs: float, **kwargs) -> None:
        seconds = duration_secs
        if event != _COMPILE_EVENT:
            return
        name = str(kwargs.get("fun_name", "?"))
        ident = threading.get_ident()
        with self._lock:
            self._active.pop(ident, None)
            shown = ident in self._shown
            self._shown.discard(ident)
            self.durations.append((name, seconds))
        if shown:
            self.say(f"compiled {name} in {seconds:.1f} s")

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            now = time.time()
            with self._lock:
                due = [
                    (ident, name, now - t0)
                    for ident, (name, t0) in self._active.items()
                    if now - t0 >= self.after
                    and ident not in self._shown
                    and name not in self._announced
                ]
                for ident, name, _ in due:
                    self._shown.add(ident)
                    self._announced.add(name)
            for _, name, elapsed in due:
                before = self.previous.get(name)
                hint = f"about {before:.0f} s last time; " if before else ""
                self.say(
                    f"compiling {name} ... ({elapsed:.0f} s so far; {hint}XLA is optimising, "
                    "this is not a hang)"
                )

    def __enter__(self) -> CompileWatch:
        import jax.monitoring

        jax.monitoring.register_scalar_listener(self._on_scalar)
        jax.monitoring.register_event_duration_secs_listener(self._on_duration)
        self._thread = threading.Thread(target=self._watch, name="diffsim-compile-watch")
        self._thread.daemon = True
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        import jax.monitoring

        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        jax.monitoring.unregister_scalar_listener(self._on_scalar)
        jax.monitoring.unregister_event_duration_listener(self._on_duration)
        self._write_history()

    def _write_history(self) -> None:
        if self.history is None:
            return
        now: dict[str, float] = {}
        with self._lock:
            for name, seconds in self.durations:
                if seconds >= self.after:  # only the long ones are ever announced
                    now[name] = max(seconds, now.get(name, 0.0))
        if not now:  # nothing long compiled (e.g. served from the cache): keep the record
            return
        times = {**self.previous, **now}
        try:
            self.history.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.history.with_name(f".{self.history.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(times, indent=1, sort_keys=True))
            os.replace(tmp, self.history)
        except OSError:  # a read-only cache: the next run simply has no estimate
            pass

    @property
    def total_s(self) -> float:
        """Seconds spent in XLA compilation while watched."""
        with self._lock:
            return sum(s for _, s in self.durations)


def _read_history(path: Path | None) -> dict[str, float]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))}


def history_file(cache: Path | None, experiment: str) -> Path | None:
    """Gives the file of an experiment's compile times beside the compilation cache."""
    return None if cache is None else cache / "compile-times" / f"{experiment}.json"


@contextlib.contextmanager
def watch_compiles(
    say: Callable[[str], None],
    after: float = ANNOUNCE_AFTER_S,
    every: float = 1.0,
    history: Path | None = None,
) -> Iterator[CompileWatch]:
    """Context manager: a `CompileWatch` over the block."""
    with CompileWatch(say, after, every, history) as w:
        yield w
