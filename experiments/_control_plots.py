"""Plot helpers shared by the control experiments: robots drawn, filmstrips, GIFs, cost curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation, PillowWriter


def draw_cartpole(ax, system, x, alpha=1.0, color="C0"):
    p, th = float(x[0]), float(x[1])
    l = float(system.length)
    ax.add_patch(plt.Rectangle((p - 0.15, -0.06), 0.3, 0.12, color=color, alpha=alpha))
    tip = (p + l * np.sin(th), l * np.cos(th))
    ax.plot([p, tip[0]], [0, tip[1]], "-", color="k", alpha=alpha, lw=2)
    ax.plot(*tip, "o", color="C3", alpha=alpha, ms=6)


def draw_two_link(ax, system, x, alpha=1.0, color="C0"):
    elbow, tip = (np.asarray(a) for a in system.positions(jnp.asarray(x)))
    ax.plot(
        [0, elbow[0], tip[0]], [0, elbow[1], tip[1]], "-o", color=color, alpha=alpha, lw=3, ms=4
    )


def draw_car(ax, system, x, alpha=1.0, color="C0"):
    px, py, psi = float(x[0]), float(x[1]), float(x[2])
    L = float(system.wheelbase)
    corners = np.array([[-0.7, -0.8], [L + 0.7, -0.8], [L + 0.7, 0.8], [-0.7, 0.8], [-0.7, -0.8]])
    R = np.array([[np.cos(psi), -np.sin(psi)], [np.sin(psi), np.cos(psi)]])
    pts = corners @ R.T + np.array([px, py])
    ax.plot(pts[:, 0], pts[:, 1], "-", color=color, alpha=alpha, lw=1.5)
    front = np.array([px, py]) + R @ np.array([L, 0.0])
    ax.plot([px, front[0]], [py, front[1]], "-", color=color, alpha=alpha, lw=0.8)


def draw_quadrotor(ax, system, x, alpha=1.0, color="C0"):
    px, pz, phi = float(x[0]), float(x[1]), float(x[2])
    a = 2.5 * float(system.arm)
    d = np.array([np.cos(phi), np.sin(phi)]) * a
    ax.plot([px - d[0], px + d[0]], [pz - d[1], pz + d[1]], "-", color=color, alpha=alpha, lw=3)
    up = np.array([-np.sin(phi), np.cos(phi)]) * 0.08
    for s in (-1, 1):
        c = np.array([px, pz]) + s * d
        ax.plot([c[0], c[0] + up[0]], [c[1], c[1] + up[1]], "-", color="k", alpha=alpha, lw=1)


def filmstrip(run, name, draw, system, xs, *, frames=10, xlim, ylim, background=None, title=""):
    """Saves a stroboscopic picture: `frames` snapshots of the robot, fading from old to new."""
    xs = np.asarray(xs)
    idx = np.linspace(0, len(xs) - 1, frames).round().astype(int)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if background is not None:
        background(ax)
    for j, i in enumerate(idx):
        draw(
            ax,
            system,
            xs[i],
            alpha=0.15 + 0.85 * (j + 1) / frames,
            color=plt.cm.viridis(j / max(frames - 1, 1)),
        )
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set(xlabel="x (m)", ylabel="y (m)")
    ax.set_title(title)
    run.save_figure(fig, name)


def filmstrip_panels(run, name, draw, system, xs, *, dt, frames=8, xlim, ylim, title=""):
    """Saves a filmstrip: `frames` snapshots side by side, each labelled with its time."""
    xs = np.asarray(xs)
    idx = np.linspace(0, len(xs) - 1, frames).round().astype(int)
    fig, axes = plt.subplots(1, frames, figsize=(1.9 * frames, 2.2), sharey=True)
    for ax, i in zip(axes, idx):
        ax.axhline(0.0, color="gray", lw=0.8)
        draw(ax, system, xs[i])
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal")
        ax.set_title(f"t = {i * dt:.2f} s", fontsize=9)
        ax.set_xlabel("x (m)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("height (m)", fontsize=8)
    fig.suptitle(title)
    run.save_figure(fig, name)


def animation(run, name, draw, system, xs, *, dt, xlim, ylim, background=None, every=1):
    """Saves a GIF of the robot following the trajectory `xs`."""
    xs = np.asarray(xs)[::every]
    fig, ax = plt.subplots(figsize=(5, 3.5))

    def frame(i):
        ax.clear()
        if background is not None:
            background(ax)
        draw(ax, system, xs[i])
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal")
        ax.set_title(f"t = {i * every * dt:.2f} s")

    anim = FuncAnimation(fig, frame, frames=len(xs))
    anim.save(run.path(name), writer=PillowWriter(fps=max(1, int(round(1 / (dt * every))))))
    plt.close(fig)


def cost_curves(run, name, curves: dict, *, xlabel="iteration", title="cost"):
    """Saves cost against iteration (log scale) for each labelled curve."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (it, c) in curves.items():
        ax.semilogy(np.asarray(it), np.asarray(c), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cost")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    run.save_figure(fig, name)


def state_plot(run, name, t, series: dict, *, title=""):
    """Saves stacked time series: `series` maps a label to an array over `t`."""
    fig, axes = plt.subplots(len(series), 1, figsize=(7, 1.8 * len(series)), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, (label, y) in zip(axes, series.items()):
        y = np.asarray(y)
        ax.plot(np.asarray(t)[: len(y)], y)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    axes[0].set_title(title)
    run.save_figure(fig, name)
