"""`report.html`: one self-contained page per run, or several runs side by side.

A page shows, for each run, its status, its config, its headline metrics (a table with
one column per run when there are several), every figure (embedded as data URIs, so the
page can be mailed or moved on its own) and the last lines of its log.
"""

from __future__ import annotations

import base64
import html
import json
import tomllib
from collections.abc import Sequence
from pathlib import Path

from ._runs import CONFIG_FILE, LOG_FILE, METRICS_FILE, STATUS_FILE

LOG_LINES = 30
"""How many of the log's last lines a report shows."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left;
         font-variant-numeric: tabular-nums; vertical-align: top; }
th { background: #f3f3f3; }
.runs { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
.run { flex: 1 1 30em; min-width: 24em; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
.failed { color: #a00; } .finished { color: #070; }
"""


class ReportError(Exception):
    """A report that cannot be written: the message names the path and the problem."""


def write_report(run_dirs: Sequence[Path], out: Path) -> Path:
    """Writes an HTML page for the runs in `run_dirs` to `out` (atomically); gives `out`.

    **Raises:** `ReportError` if a directory is not a run directory (no `config.toml`).
    """
    runs = [_read_run(Path(d)) for d in run_dirs]
    if not runs:
        raise ReportError("report: give at least one run directory")
    title = runs[0]["name"] if len(runs) == 1 else f"{len(runs)} runs"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>diffsim report: {html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>diffsim report: {html.escape(title)}</h1>",
    ]
    parts.append(_metrics_table(runs))
    parts.append('<div class="runs">')
    for r in runs:
        parts.append(_run_section(r))
    # The page counts its images that decoded (for a reader, and for the browser test).
    parts.append(
        "</div><script>window.addEventListener('load', () => {"
        "const imgs = [...document.images];"
        "const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;"
        "document.body.dataset.images = ok + '/' + imgs.length;});</script>"
    )
    parts.append("</body></html>")
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(out)
    return out


def _read_run(d: Path) -> dict:
    if not (d / CONFIG_FILE).is_file():
        raise ReportError(f"{d}: not a run directory (no {CONFIG_FILE})")
    config_text = (d / CONFIG_FILE).read_text()
    try:
        experiment = tomllib.loads(config_text).get("experiment", "?")
    except tomllib.TOMLDecodeError:
        experiment = "?"
    metrics = _read_json(d / METRICS_FILE) or {}
    status = _read_json(d / STATUS_FILE) or {"status": "unknown"}
    log = (d / LOG_FILE).read_text(errors="replace").splitlines() if (d / LOG_FILE).exists() else []
    figures = sorted(p for p in d.rglob("*") if p.suffix.lower() in (".png", ".gif", ".svg"))
    return {
        "dir": d,
        "name": d.name,
        "experiment": experiment,
        "config": config_text,
        "metrics": metrics,
        "status": status,
        "log": log[-LOG_LINES:],
        "figures": figures,
    }


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4g}"
    if isinstance(v, list):
        text = json.dumps(v)
        return text if len(text) <= 80 else text[:77] + "..."
    return str(v)


def _metrics_table(runs: list[dict]) -> str:
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r["metrics"] if k not in keys]
    if not keys:
        return "<p>No metrics (no run finished).</p>"
    head = "".join(f"<th>{html.escape(r['name'])}</th>" for r in runs)
    rows = [f"<table><tr><th>metric</th>{head}</tr>"]
    for k in keys:
        cells = "".join(
            f"<td>{html.escape(_fmt(r['metrics'][k])) if k in r['metrics'] else ''}</td>"
            for r in runs
        )
        rows.append(f"<tr><td>{html.escape(k)}</td>{cells}</tr>")
    rows.append("</table>")
    return "<h2>Headline metrics</h2>" + "".join(rows)


def _image(path: Path) -> str:
    mime = {".png": "image/png", ".gif": "image/gif", ".svg": "image/svg+xml"}[path.suffix.lower()]
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:{mime};base64,{data}" alt="{html.escape(path.name)}">'


def _run_section(r: dict) -> str:
    status = r["status"].get("status", "unknown")
    reason = r["status"].get("reason")
    out = [
        '<section class="run">',
        f"<h2>{html.escape(r['name'])}</h2>",
        f"<p>experiment <code>{html.escape(str(r['experiment']))}</code>, status "
        f'<span class="{html.escape(status)}">{html.escape(status)}</span>'
        + (f": {html.escape(reason)}" if reason else "")
        + f"; folder <code>{html.escape(str(r['dir']))}</code></p>",
        "<h3>Config</h3>",
        f"<pre>{html.escape(r['config'])}</pre>",
    ]
    if r["figures"]:
        out.append("<h3>Figures</h3>")
        for p in r["figures"]:
            rel = p.relative_to(r["dir"])
            out.append(
                f"<figure>{_image(p)}<figcaption>{html.escape(str(rel))}</figcaption></figure>"
            )
    out.append(f"<h3>Log (last {LOG_LINES} lines)</h3>")
    out.append(f"<pre>{html.escape(chr(10).join(r['log']))}</pre>")
    out.append("</section>")
    return "\n".join(out)
