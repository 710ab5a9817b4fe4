"""Figure hygiene, checked before a run saves a figure.

`figure_problems(fig)` lists what a reader would trip over: plotted axes without x or
y label, colour bars without a label, legends drawn over data points. With the
environment variable `DIFFSIM_CHECK_FIGURES=1` (the test suite sets it), `check_figure`
raises on any problem; otherwise it gives them (the run logs them).
"""

from __future__ import annotations

import os

import numpy as np

CHECK_ENV = "DIFFSIM_CHECK_FIGURES"


class FigureError(ValueError):
    """A figure with a problem a reader would trip over (see `figure_problems`)."""


def _colorbar_axes(fig) -> set:
    return {ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None}


def _has_data(ax) -> bool:
    return bool(ax.lines or ax.collections or ax.images or ax.patches)


def _labelled(ax, shared, which: str) -> bool:
    for other in shared.get_siblings(ax):
        label = other.get_xlabel() if which == "x" else other.get_ylabel()
        if label.strip():
            return True
    return False


def figure_problems(fig) -> list[str]:
    """Gives a list of problems in `fig` (empty: fine)."""
    problems: list[str] = []
    bars = _colorbar_axes(fig)
    if any(ax.get_legend() is not None for ax in fig.axes):
        fig.draw_without_rendering()  # legends placed with loc="best" get their place here
    for k, ax in enumerate(fig.axes):
        where = f"axes {k}" + (f" ({ax.get_title()!r})" if ax.get_title() else "")
        if ax in bars:
            cb = ax._colorbar
            label = ax.get_ylabel() if cb.orientation == "vertical" else ax.get_xlabel()
            if not label.strip():
                problems.append(f"{where}: colour bar without a label")
            continue
        if not ax.axison or not _has_data(ax):
            continue
        if ax.name == "3d" or ax.name == "polar":
            continue
        # Stacked panels sharing an axis need its label once.
        if not _labelled(ax, ax.get_shared_x_axes(), "x"):
            problems.append(f"{where}: no x label")
        if not _labelled(ax, ax.get_shared_y_axes(), "y"):
            problems.append(f"{where}: no y label")
        legend = ax.get_legend()
        if legend is not None and legend.get_visible() and legend.axes is ax:
            box = legend.get_window_extent()
            inside = 0
            for line in ax.lines:
                xy = np.asarray(line.get_xydata(), float)
                if xy.size == 0:
                    continue
                pts = line.get_transform().transform(xy)
                pts = pts[np.all(np.isfinite(pts), axis=1)]
                x, y = pts[:, 0], pts[:, 1]
                inside += int(np.sum((x > box.x0) & (x < box.x1) & (y > box.y0) & (y < box.y1)))
            if inside:
                problems.append(f"{where}: legend covers {inside} data point(s)")
    return problems


def check_figure(fig, name: str) -> list[str]:
    """Gives the problems of `fig`; raises `FigureError` when `DIFFSIM_CHECK_FIGURES=1`."""
    problems = figure_problems(fig)
    if problems and os.environ.get(CHECK_ENV, "").strip() not in ("", "0"):
        raise FigureError(f"figure {name}: " + "; ".join(problems))
    return problems
