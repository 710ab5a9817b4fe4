"""The one progress bar: tqdm on stderr, sensible in a terminal, a log file and a notebook.

In a terminal the bar redraws in place; when stderr is not a terminal (a file, a pipe, a
CI log) it writes a plain line at most every 30 s instead of hundreds of redraws; in
Jupyter it is tqdm's widget. `DIFFSIM_PROGRESS=0` in the environment turns every bar off.
"""

from __future__ import annotations

import os
import sys
from typing import Any

QUIET_INTERVAL_S = 30.0


def progress_enabled(progress: bool = True) -> bool:
    """`progress`, unless the environment variable `DIFFSIM_PROGRESS` is `0`/`off`/`false`."""
    env = os.environ.get("DIFFSIM_PROGRESS", "").strip().lower()
    return bool(progress) and env not in ("0", "off", "false", "no")


def progress_bar(total: int | None = None, *, desc: str = "", disable: bool = False, **kwargs):
    """Gives a tqdm bar on stderr (use as a context manager, or `update` then `close`).

    **Arguments:** `total` (the count, or `None` when unknown), `desc` (the label),
    `disable` (no bar at all), any other tqdm keyword (`unit`, `initial`, `leave`).
    """
    options: dict[str, Any] = {"desc": desc, "file": sys.stderr, "leave": False}
    if not _interactive():
        options.update(mininterval=QUIET_INTERVAL_S, ascii=True, ncols=100, leave=True)
    else:
        options.update(dynamic_ncols=True)
    options.update(kwargs)
    disabled = disable or not progress_enabled()
    if _in_notebook():
        from tqdm.notebook import tqdm as notebook_tqdm

        options.pop("file", None)
        return notebook_tqdm(total=total, disable=disabled, **options)
    from tqdm import tqdm

    return tqdm(total=total, disable=disabled, **options)


def _interactive() -> bool:
    stream = sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except AttributeError:
        return False
    if ip is None or type(ip).__name__ != "ZMQInteractiveShell":
        return False
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None  # tqdm's widget needs it
