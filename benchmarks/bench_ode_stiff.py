"""Stiff solves: diffsim's Kvaerno5 against scipy's Radau and BDF and diffrax's Kvaerno5.

Robertson's kinetics (rates 0.04, 3e7, 1e4; t to 1e5) and Van der Pol with mu = 1000 (t to
3000, about two relaxation periods), at equal rtol/atol for every solver. Printed per
solver: accepted steps, rejected steps, f evaluations (nfev; diffsim counts one per Newton
iteration and per explicit stage, Jacobians apart), Jacobian evaluations (njev), the
largest error at t_end against scipy's Radau at rtol 1e-12 (relative for Robertson,
absolute for Van der Pol's y1), and the median wall time of a solve (jitted for diffsim
and diffrax, compile time apart). scipy gets the analytic Jacobian (its best ordinary
use); diffsim and diffrax take it by forward-mode AD. diffrax's f evaluations are counted
by a host callback in its vector field, which also counts each Jacobian as one call (it
runs f's forward-mode batch once).

    .venv/bin/python benchmarks/bench_ode_stiff.py [--quick]
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _timing import machine_load, timed  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

from diffsim.ode import Kvaerno5, solve  # noqa: E402


def robertson(t, y, k, xp=jnp):
    return xp.stack(
        [
            -k[0] * y[0] + k[2] * y[1] * y[2],
            k[0] * y[0] - k[1] * y[1] ** 2 - k[2] * y[1] * y[2],
            k[1] * y[1] ** 2,
        ]
    )


def robertson_jac(t, y, k):
    return np.array(
        [
            [-k[0], k[2] * y[2], k[2] * y[1]],
            [k[0], -2 * k[1] * y[1] - k[2] * y[2], -k[2] * y[1]],
            [0.0, 2 * k[1] * y[1], 0.0],
        ]
    )


def vdp(t, y, mu, xp=jnp):
    return xp.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])


def vdp_jac(t, y, mu):
    return np.array([[0.0, 1.0], [-2 * mu * y[0] * y[1] - 1, mu * (1 - y[0] ** 2)]])


PROBLEMS = {
    "Robertson": (
        robertson,
        robertson_jac,
        np.array([1.0, 0.0, 0.0]),
        np.array([0.04, 3e7, 1e4]),
        1e5,
    ),
    "VanderPol mu=1000": (vdp, vdp_jac, np.array([2.0, 0.0]), 1000.0, 3000.0),
}


# diffsim's adaptive solve is a rollout of exactly max_steps attempts (the ones after the end
# pass the state through), so its bound is set near need; diffrax's while loop stops early.
MAX_STEPS = {"Robertson": 1000, "VanderPol mu=1000": 4000}


def _np_field(f, args):
    """The same field in numpy: scipy calls it once per evaluation, from Python."""
    return lambda t, y: f(t, y, args, xp=np)


def error(name, y, ref):
    if name == "Robertson":
        return float(np.max(np.abs(y - ref) / np.abs(ref)))
    return float(abs(y[0] - ref[0]))


def run(name, rtol, atol, max_steps):
    f, jac, y0, args, t1 = PROBLEMS[name]
    fnp = _np_field(f, args)
    ref = solve_ivp(
        fnp,
        (0, t1),
        y0,
        method="Radau",
        rtol=1e-12,
        atol=atol * 1e-4,
        jac=lambda t, y: jac(t, y, args),
    ).y[:, -1]
    rows = []

    # diffsim
    ts = jnp.array([0.0, t1])

    @jax.jit
    def ds(y0_):
        return solve(
            f,
            y0_,
            ts,
            jnp.asarray(args),
            solver=Kvaerno5(),
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            solution=True,
        )

    tm = timed(ds, jnp.asarray(y0), repeats=3, budget_s=20)
    sol = tm.out
    y = np.asarray(sol.ys[-1])
    rows.append(
        (
            "diffsim Kvaerno5",
            int(sol.accepted),
            int(sol.rejected),
            int(sol.nfev),
            int(sol.njev),
            error(name, y, ref),
            tm.median,
        )
    )

    # scipy
    for method in ("Radau", "BDF"):

        def sp(method=method):
            return solve_ivp(
                fnp,
                (0, t1),
                y0,
                method=method,
                rtol=rtol,
                atol=atol,
                jac=lambda t, y: jac(t, y, args),
            )

        tm = timed(sp, repeats=3, budget_s=20)
        r = tm.out
        rows.append(
            (
                f"scipy {method}",
                len(r.t) - 1,
                -1,
                r.nfev,
                r.njev,
                error(name, r.y[:, -1], ref),
                tm.median,
            )
        )

    # diffrax, its f evaluations counted on the host
    count = [0]

    def counted(t, y, a):
        jax.debug.callback(lambda: count.__setitem__(0, count[0] + 1))
        return f(t, y, a)

    def dfx(fn):
        @jax.jit
        def go(y0_):
            return diffrax.diffeqsolve(
                diffrax.ODETerm(fn),
                diffrax.Kvaerno5(),
                0.0,
                t1,
                None,
                y0_,
                args=jnp.asarray(args),
                stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
                max_steps=max_steps,
                saveat=diffrax.SaveAt(t1=True),
            )

        return go

    go = dfx(f)
    tm = timed(go, jnp.asarray(y0), repeats=3, budget_s=20)
    out = tm.out
    jax.block_until_ready(dfx(counted)(jnp.asarray(y0)))
    rows.append(
        (
            "diffrax Kvaerno5",
            int(out.stats["num_accepted_steps"]),
            int(out.stats["num_rejected_steps"]),
            count[0],
            -1,
            error(name, np.asarray(out.ys[-1]), ref),
            tm.median,
        )
    )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tolerance, Robertson only")
    a = parser.parse_args()
    cases = [("Robertson", 1e-6, 1e-10)]
    if not a.quick:
        cases += [
            ("Robertson", 1e-8, 1e-14),
            ("VanderPol mu=1000", 1e-6, 1e-8),
            ("VanderPol mu=1000", 1e-8, 1e-10),
        ]
    print(machine_load())
    head = (
        f"{'solver':<18} {'steps':>6} {'rej':>5} {'nfev':>7} {'njev':>6} {'error':>9} {'time':>9}"
    )
    for name, rtol, atol in cases:
        print(f"\n{name}, rtol={rtol:g}, atol={atol:g}")
        rows = run(name, rtol, atol, max_steps=MAX_STEPS[name])
        # agreement before timing matters: every solver within 1000 rtol of the reference
        for r in rows:
            assert r[5] < 1000 * rtol, (r[0], r[5])
        print(head)
        base = rows[0]
        for r in rows:
            rej = "-" if r[2] < 0 else str(r[2])
            njev = "-" if r[4] < 0 else str(r[4])
            print(
                f"{r[0]:<18} {r[1]:>6} {rej:>5} {r[3]:>7} {njev:>6} {r[5]:>9.1e} "
                f"{r[6] * 1e3:>7.1f}ms  steps x{r[1] / base[1]:.2f}"
            )
    print("\n" + machine_load())


if __name__ == "__main__":
    main()
