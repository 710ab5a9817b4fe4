"""The experiment registry: entry points in the group `diffsim.experiments`, plus
`module:function` for a user's own.

The library never imports the application: diffsim's own experiments (the
`diffsim_experiments` package) are declared in `pyproject.toml` exactly as a user's package
declares its own,

```toml
[project.entry-points."diffsim.experiments"]
my_exp = "my_package.my_exp"      # a module with a dataclass `Config` and `run(cfg, run)`
```

so installing a package is all it takes to add experiments to `diffsim list` and
`diffsim run`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import os
import re
import sys
from collections.abc import Callable
from types import ModuleType

from ._config import ConfigError

GROUP = "diffsim.experiments"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE_FUNCTION = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}$")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A runnable experiment: its name, module, `Config` dataclass and `run` function."""

    name: str
    module: ModuleType
    config_cls: type
    fn: Callable

    @property
    def description(self) -> str:
        """The first line of the module docstring (what `diffsim list` shows)."""
        doc = (self.module.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


def registered() -> dict[str, importlib.metadata.EntryPoint]:
    """The experiments installed packages declare, by name (the first declaration wins).

    Read once per `sys.path` (scanning every installed distribution takes ~0.1 s): a
    package installed while a process runs is seen by the next process.
    """
    return dict(_scan(tuple(sys.path)))


@functools.lru_cache(maxsize=4)
def _scan(path: tuple[str, ...]) -> tuple[tuple[str, importlib.metadata.EntryPoint], ...]:
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    return tuple(sorted(found.items()))


def list_experiments() -> list[str]:
    """The names of the registered experiments, sorted."""
    return list(registered())


def find_experiment(name: object, source: str = "config") -> Experiment:
    """Gives the registered experiment `name`, or a user's `"module:function"`.

    A `module:function` is imported from the current folder or `sys.path`; its module must
    define a dataclass `Config`.

    **Raises:** `ConfigError` naming `source`, the key `experiment` and what is allowed.
    """
    where = f"{source}: key 'experiment'"
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: must name an experiment (see `diffsim list`), got {name!r}")
    if ":" in name:
        if not _MODULE_FUNCTION.match(name):
            raise ConfigError(
                f"{where}: {name!r} is not of the form 'package.module:function' "
                "(an absolute module path, a colon, a function name)"
            )
        mod_name, fn_name = name.split(":")
        if os.getcwd() not in sys.path:  # a user's own module beside their config
            sys.path.insert(0, os.getcwd())
        module = _import(mod_name, where)
    else:
        known = registered()
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"{where}: unknown experiment {name!r}{hint} "
                f"(run `diffsim list`; or give 'module:function')"
            )
        target = known[name].value
        mod_name, _, fn_name = target.partition(":")
        module = _import(mod_name, where)
        fn_name = fn_name or "run"
    fn = getattr(module, fn_name, None)
    cls = getattr(module, "Config", None)
    if not callable(fn) or not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ConfigError(
            f"{where}: {mod_name} needs a dataclass `Config` and a function `{fn_name}(cfg, run)`"
        )
    return Experiment(name, module, cls, fn)


def _import(mod_name: str, where: str) -> ModuleType:
    try:
        return importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ConfigError(f"{where}: cannot import {mod_name!r}: {e}") from None
    except SyntaxError as e:
        raise ConfigError(
            f"{where}: {mod_name!r} has a syntax error: {e.msg} ({e.filename}, line {e.lineno})"
        ) from None
    except Exception as e:  # the module itself fails while importing
        raise ConfigError(
            f"{where}: importing {mod_name!r} failed: {type(e).__name__}: {e}"
        ) from None
