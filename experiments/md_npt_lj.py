"""Constant-pressure LJ fluid against the Johnson et al. (1993) equation of state.

At each state point the external pressure is the EOS pressure at a chosen density and
temperature; diffsim's `NPT` (isotropic MTK barostat, Langevin thermostats) runs N
atoms with the LJ potential truncated and shifted at rc plus the analytic tail
correction beyond rc (a volume-dependent energy, so the barostat sees the tail
pressure). Frames are reweighted by exp(-u(rc) N_pairs(r < rc) / kT) from the shifted
to the plainly truncated potential, whose tail-corrected ensemble is the full LJ fluid
the EOS describes (g(r) = 1 beyond rc). Compared with the EOS, with block standard
errors: the mean density, the mean instantaneous pressure against the set pressure,
and the volume fluctuations against the isothermal compressibility
kappa_T = <dV^2> / (kT <V>) = 1 / (rho dP/drho).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import diffsim.molecular as md

matplotlib.use("Agg")

# Johnson, Zollweg and Gubbins, Mol. Phys. 78, 591 (1993), Table 10 (gamma = 3).
JZG_X = (
    0.8623085097507421, 2.976218765822098, -8.402230115796038, 0.1054136629203555,
    -0.8564583828174598, 1.582759470107601, 0.7639421948305453, 1.753173414312048,
    2.798291772190376e3, -4.8394220260857657e-2, 0.9963265197721935, -3.698000291272493e1,
    2.084012299434647e1, 8.305402124717285e1, -9.574799715203068e2, -1.477746229234994e2,
    6.398607852471505e1, 1.603993673294834e1, 6.805916615864377e1, -2.791293578795945e3,
    -6.245128304568454, -8.116836104958410e3, 1.488735559561229e1, -1.059346754655084e4,
    -1.131607632802822e2, -8.867771540418822e3, -3.986982844450543e1, -4.689270299917261e3,
    2.593535277438717e2, -2.694523589434903e3, -7.218487631550215e2, 1.721802063863269e2,
)  # fmt: skip


def jzg_pressure(rho, T):
    """The Johnson et al. (1993) MBWR pressure of the full LJ fluid (reduced units)."""
    x = (None, *JZG_X)
    a = (
        x[1] * T + x[2] * T**0.5 + x[3] + x[4] / T + x[5] / T**2,
        x[6] * T + x[7] + x[8] / T + x[9] / T**2,
        x[10] * T + x[11] + x[12] / T,
        x[13],
        x[14] / T + x[15] / T**2,
        x[16] / T,
        x[17] / T + x[18] / T**2,
        x[19] / T**2,
    )
    b = (
        x[20] / T**2 + x[21] / T**3,
        x[22] / T**2 + x[23] / T**4,
        x[24] / T**2 + x[25] / T**3,
        x[26] / T**2 + x[27] / T**4,
        x[28] / T**2 + x[29] / T**3,
        x[30] / T**2 + x[31] / T**3 + x[32] / T**4,
    )
    F = np.exp(-3.0 * rho**2)
    p = rho * T + sum(a[i] * rho ** (i + 2) for i in range(8))
    return p + F * sum(b[i] * rho ** (2 * i + 3) for i in range(6))


def jzg_density(P, T, lo=0.3, hi=1.1):
    """The liquid-branch density at pressure P (bisection on a monotone stretch)."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if jzg_pressure(mid, T) < P else (lo, mid)
    return 0.5 * (lo + hi)


def jzg_compressibility(rho, T, h=1e-6):
    """kappa_T = 1 / (rho dP/drho) from the EOS."""
    dp = (jzg_pressure(rho + h, T) - jzg_pressure(rho - h, T)) / (2 * h)
    return 1.0 / (rho * dp)


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    float64: bool = True
    n: int = dataclasses.field(default=256, metadata={"min": 32, "help": "4 c^3 atoms"})
    kT: float = dataclasses.field(default=2.0, metadata={"min_exclusive": 0})
    densities: tuple[float, ...] = (0.6, 0.7, 0.8)
    cutoff: float = dataclasses.field(default=3.0, metadata={"min_exclusive": 0})
    skin: float = dataclasses.field(default=0.4, metadata={"min": 0})
    dt: float = dataclasses.field(default=0.004, metadata={"min_exclusive": 0})
    gamma: float = dataclasses.field(default=1.0, metadata={"min": 0})
    barostat_time: float = dataclasses.field(default=0.5, metadata={"min_exclusive": 0})
    barostat_gamma: float = dataclasses.field(default=1.0, metadata={"min": 0})
    equilibrate_steps: int = dataclasses.field(default=2000, metadata={"min": 0})
    production_steps: int = dataclasses.field(default=12000, metadata={"min": 100})
    sample_every: int = dataclasses.field(default=20, metadata={"min": 1})
    blocks: int = dataclasses.field(default=10, metadata={"min": 2})


def validate(cfg: Config) -> None:
    if not cfg.densities or any(not 0.3 <= d <= 1.0 for d in cfg.densities):
        raise ValueError(
            f"densities must be liquid-branch values in [0.3, 1.0], got {cfg.densities}"
        )
    if cfg.production_steps // cfg.sample_every < 2 * cfg.blocks:
        raise ValueError("production_steps / sample_every must give at least 2 frames per block")


def _pairs_within(positions, lengths, rc):
    d = positions[:, None, :] - positions[None, :, :]
    L = lengths[None, None, :]
    d = d - L * jnp.round(d / L)
    r2 = jnp.sum(d * d, -1)
    n = positions.shape[0]
    mask = (r2 < rc * rc) & ~jnp.eye(n, dtype=bool)
    return jnp.sum(mask) // 2


def _block_stats(values, weights, blocks, fn):
    """fn(values, weights) on all frames, and its standard error over contiguous blocks."""
    full = fn(values, weights)
    parts = [
        fn(v, w) for v, w in zip(np.array_split(values, blocks), np.array_split(weights, blocks))
    ]
    return full, float(np.std(parts, ddof=1) / np.sqrt(blocks))


def _mean(v, w):
    return float(np.sum(w * v) / np.sum(w))


def _kappa(kT):
    def f(v, w):
        m = _mean(v, w)
        return float(_mean((v - m) ** 2, w) / (kT * m))

    return f


def run(cfg: Config, run) -> dict:
    import matplotlib.pyplot as plt
    from tqdm import tqdm

    validate(cfg)
    dtype = jnp.float64 if cfg.float64 else jnp.float32
    key = jax.random.key(cfg.seed)
    rc = cfg.cutoff
    u_rc = 4.0 * (rc**-12 - rc**-6)
    rows, traces, metrics = [], {}, {}
    pair_count = jax.jit(_pairs_within)
    for k, rho_target in enumerate(cfg.densities):
        P = float(jzg_pressure(rho_target, cfg.kT))
        r, box = md.lattice(cfg.n, rho_target, dtype=dtype)
        energy = md.lennard_jones(box, cutoff=md.Shifted(rc)) + md.LennardJonesTail(cfg.n, box, rc)
        nbrs = md.neighbor_list(r, box, rc, skin=cfg.skin)
        npt = md.NPT(
            energy,
            dt=cfg.dt,
            kT=cfg.kT,
            pressure=P,
            gamma=cfg.gamma,
            barostat_time=cfg.barostat_time,
            barostat_gamma=cfg.barostat_gamma,
        )
        kk = jax.random.fold_in(key, k)
        v = md.random_velocities(cfg.n, 3, cfg.kT, key=jax.random.fold_in(kk, 0), dtype=dtype)
        state = npt.init(r, box, v, nbrs)
        t0 = time.perf_counter()
        state, _ = md.simulate(
            npt, state, cfg.equilibrate_steps, key=jax.random.fold_in(kk, 1), chunk=1000
        )
        vols, press, counts = [], [], []
        frames = cfg.production_steps // cfg.sample_every
        for f in tqdm(range(frames), desc=f"NPT rho={rho_target}", leave=False, disable=run.quiet):
            state, out = md.simulate(
                npt,
                state,
                cfg.sample_every,
                key=jax.random.fold_in(jax.random.fold_in(kk, 2), f),
                chunk=cfg.sample_every,
            )
            vols.append(np.asarray(out["volume"]))
            press.append(np.asarray(out["pressure"]))
            counts.append(int(pair_count(state.positions, state.space.lengths, rc)))
        seconds = time.perf_counter() - t0
        vol_frames = np.asarray([x[-1] for x in vols], np.float64)
        vol_all = np.concatenate(vols).astype(np.float64)
        p_all = np.concatenate(press).astype(np.float64)
        n_in = np.asarray(counts, np.float64)
        logw = -u_rc * n_in / cfg.kT
        w = np.exp(logw - logw.max())
        ones = np.ones_like(vol_frames)
        rho_ts, rho_ts_err = _block_stats(cfg.n / vol_frames, ones, cfg.blocks, _mean)
        rho_lj, rho_lj_err = _block_stats(cfg.n / vol_frames, w, cfg.blocks, _mean)
        rho_eos = jzg_density(P, cfg.kT)
        p_mean, p_err = _block_stats(p_all, np.ones_like(p_all), cfg.blocks, _mean)
        kap, kap_err = _block_stats(vol_frames, w, cfg.blocks, _kappa(cfg.kT))
        kap_eos = jzg_compressibility(rho_eos, cfg.kT)
        rows.append((P, rho_eos, rho_lj, rho_lj_err, rho_ts, p_mean, p_err, kap, kap_err, kap_eos))
        traces[rho_target] = vol_all
        tag = f"rho{rho_target:g}"
        metrics |= {
            f"{tag}_density_z": (rho_lj - rho_eos) / rho_lj_err,
            f"{tag}_density_rel_error": (rho_lj - rho_eos) / rho_eos,
            f"{tag}_pressure_z": (p_mean - P) / p_err,
            f"{tag}_kappa_rel_error": (kap - kap_eos) / kap_eos,
            f"{tag}_kappa_z": (kap - kap_eos) / kap_err,
        }
        run.log(
            f"rho* = {rho_target}: P = {P:.4f}, <rho> = {rho_lj:.4f} +- {rho_lj_err:.4f} "
            f"(EOS {rho_eos:.4f}; shifted-potential ensemble {rho_ts:.4f}), <P> = {p_mean:.4f} "
            f"+- {p_err:.4f}, kappa_T = {kap:.4f} +- {kap_err:.4f} (EOS {kap_eos:.4f}); "
            f"{cfg.equilibrate_steps + cfg.production_steps} steps in {seconds:.0f} s"
        )
    run.log(
        "| T* | P* (EOS at target) | rho EOS | <rho> NPT (reweighted) | <rho> shifted | "
        "<P> NPT | kappa_T NPT | kappa_T EOS |"
    )
    run.log("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for P, re, rl, rle, rt, pm, pe, ka, kae, ke in rows:
        run.log(
            f"| {cfg.kT} | {P:.4f} | {re:.4f} | {rl:.4f} ± {rle:.4f} | {rt:.4f} | "
            f"{pm:.4f} ± {pe:.4f} | {ka:.4f} ± {kae:.4f} | {ke:.4f} |"
        )
    metrics["max_abs_density_z"] = max(abs(v) for k, v in metrics.items() if "density_z" in k)
    metrics["max_abs_pressure_z"] = max(abs(v) for k, v in metrics.items() if "pressure_z" in k)
    metrics["max_abs_kappa_rel_error"] = max(
        abs(v) for k, v in metrics.items() if "kappa_rel_error" in k
    )

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    grid = np.linspace(min(cfg.densities) - 0.05, max(cfg.densities) + 0.05, 200)
    axes[0].plot(grid, jzg_pressure(grid, cfg.kT), "k-", label="Johnson et al. 1993")
    axes[0].errorbar(
        [r[2] for r in rows],
        [r[0] for r in rows],
        xerr=[r[3] for r in rows],
        fmt="o",
        color="C1",
        label="diffsim NPT (reweighted)",
    )
    axes[0].set(xlabel="density (sigma^-3)", ylabel="pressure (epsilon sigma^-3)",
                title=f"LJ equation of state, T* = {cfg.kT}")  # fmt: skip
    axes[0].legend()
    for rho_target, vol in traces.items():
        axes[1].plot(
            np.arange(len(vol)) * cfg.dt, cfg.n / vol, lw=0.5, label=f"rho* = {rho_target}"
        )
    axes[1].set(xlabel="time (LJ units)", ylabel="density (sigma^-3)", title="NPT density")
    axes[1].legend()
    run.save_figure(fig, "eos.png")
    plt.close("all")
    metrics = {k: float(v) for k, v in metrics.items()}
    run.log(str(metrics))
    return metrics
