"""Cart-pole swing-up: diffsim (iLQR, BPTT shooting) against CasADi + IPOPT, side by side.

Same problem for every method (the `cartpole_swingup` experiment's default config):
RK4 with one step per control interval dt = 0.05 s, horizon 80 steps, force smoothly
saturated at +-20 N, cost 0.01 sum u^2 + terminal quadratic, the same initial guess.
CasADi solves it by direct multiple shooting with IPOPT (exact Hessian, MUMPS). All in
float64. Wall times are medians of repeats after a warm-up; compile (JAX tracing + XLA;
CasADi graph construction) reported apart.

    .venv/bin/python benchmarks/bench_control.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)

import _timing  # noqa: E402
import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from diffsim.control import ilqr, shoot, single_shooting, trajectory_cost  # noqa: E402
from diffsim_experiments.cartpole_swingup import Config, problem  # noqa: E402


def timed(fn, repeats):
    """(output, median s, compile s) of `fn()`, through the shared timing helper."""
    t = _timing.timed(fn, repeats=repeats)
    return t.out, t.median, max(t.first - t.median, 0.0)


def casadi_solve(cfg, system, x0, us0, repeats):
    import casadi as ca

    mc, mp, l, g = (
        float(v) for v in (system.cart_mass, system.pole_mass, system.length, system.gravity)
    )
    umax = cfg.max_force
    x, u = ca.SX.sym("x", 4), ca.SX.sym("u", 1)

    def f(x, u):
        F = umax * ca.tanh(u[0] / umax)
        th, v, w = x[1], x[2], x[3]
        c, s = ca.cos(th), ca.sin(th)
        M = ca.vertcat(ca.horzcat(mc + mp, mp * l * c), ca.horzcat(mp * l * c, mp * l**2))
        rhs = ca.vertcat(F + mp * l * s * w**2, mp * g * l * s)
        acc = ca.solve(M, rhs)
        return ca.vertcat(v, w, acc[0], acc[1])

    h = cfg.dt
    k1 = f(x, u)
    k2 = f(x + h / 2 * k1, u)
    k3 = f(x + h / 2 * k2, u)
    k4 = f(x + h * k3, u)
    F = ca.Function("F", [x, u], [x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)])
    T = cfg.horizon
    Qf = np.diag(cfg.terminal_weights)

    def build():
        opti = ca.Opti()
        X, U = opti.variable(4, T + 1), opti.variable(1, T)
        opti.subject_to(X[:, 0] == np.asarray(x0))
        for k in range(T):
            opti.subject_to(X[:, k + 1] == F(X[:, k], U[:, k]))
        xT = X[:, T]
        opti.minimize(cfg.effort_weight * ca.sumsqr(U) + ca.mtimes([xT.T, Qf, xT]))
        xs_init = np.asarray(_rollout(system, cfg, x0, us0))
        opti.set_initial(X, xs_init.T)
        opti.set_initial(U, np.asarray(us0).T)
        opti.solver(
            "ipopt", {"print_time": False}, {"print_level": 0, "tol": 1e-10, "max_iter": 1000}
        )
        return opti, U

    t0 = time.perf_counter()
    opti, U = build()
    build_time = time.perf_counter() - t0
    times, sol = [], None
    for _ in range(max(repeats, 1)):
        opti, U = build()
        t0 = time.perf_counter()
        sol = opti.solve()
        times.append(time.perf_counter() - t0)
    us = np.asarray(sol.value(U)).reshape(T, 1)
    iters = int(sol.stats()["iter_count"])
    return us, statistics.median(times), build_time, iters


def _rollout(system, cfg, x0, us):
    from diffsim.control import trajectory

    _, model, _, _ = problem(cfg)
    return trajectory(model, x0, jnp.asarray(us))


def first_reach(history, target):
    hit = np.nonzero(np.asarray(history) <= target)[0]
    return int(hit[0]) if hit.size else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    cfg = Config()
    system, model, cost, x0 = problem(cfg)
    us0 = cfg.init_noise * jax.random.normal(jax.random.key(cfg.seed), (cfg.horizon, 1))
    J = eqx.filter_jit(lambda us: trajectory_cost(model, cost, x0, us))
    rows = []

    # CasADi + IPOPT, direct multiple shooting.
    us_ip, t_ip, build_ip, it_ip = casadi_solve(cfg, system, x0, us0, repeats)
    J_ip = float(J(jnp.asarray(us_ip)))
    rows.append(("CasADi+IPOPT (multiple shooting)", J_ip, t_ip, build_ip, it_ip))

    # iLQR.
    ilqr_iters = 100
    solve = eqx.filter_jit(lambda us: ilqr(model, cost, x0, us, max_iter=ilqr_iters, tol=1e-10))
    res, t_il, c_il = timed(lambda: solve(us0), repeats)
    rows.append(
        (f"diffsim iLQR (<= {ilqr_iters} it)", float(res.cost), t_il, c_il, int(res.iterations))
    )

    # BPTT single shooting, L-BFGS and Adam (jitted scans of optax updates).
    n_lbfgs = 150 if args.quick else 300
    n_adam = 300 if args.quick else 1000
    obj = single_shooting(model, cost, x0)
    lb = eqx.filter_jit(lambda us: shoot(obj, us, optax.lbfgs(), steps=n_lbfgs))
    res_lb, t_lb, c_lb = timed(lambda: lb(us0), repeats)
    rows.append(("diffsim BPTT shooting, L-BFGS", float(res_lb.cost), t_lb, c_lb, n_lbfgs))
    ad = eqx.filter_jit(lambda us: shoot(obj, us, optax.adam(0.3), steps=n_adam))
    res_ad, t_ad, c_ad = timed(lambda: ad(us0), repeats)
    rows.append(("diffsim BPTT shooting, Adam", float(res_ad.cost), t_ad, c_ad, n_adam))

    # The experiment's pipeline: Adam shooting then iLQR polish.
    pipe = eqx.filter_jit(
        lambda us: ilqr(
            model,
            cost,
            x0,
            shoot(obj, us, optax.adam(0.3), steps=300).params,
            max_iter=ilqr_iters,
            tol=1e-10,
        )
    )
    res_p, t_p, c_p = timed(lambda: pipe(us0), repeats)
    rows.append(
        (
            "diffsim Adam(300) + iLQR polish",
            float(res_p.cost),
            t_p,
            c_p,
            300 + int(res_p.iterations),
        )
    )

    print(
        f"\nCart-pole swing-up, T = {cfg.horizon}, dt = {cfg.dt}, float64, "
        f"{jax.devices()[0].platform}; median of {repeats} runs"
    )
    print(
        f"{'method':38s} {'final cost':>12s} {'vs IPOPT':>9s} {'time (s)':>9s} "
        f"{'speed-up':>9s} {'compile (s)':>11s} {'iters':>6s}"
    )
    for name, Jv, t, c, it in rows:
        print(
            f"{name:38s} {Jv:12.6f} {100 * (Jv / J_ip - 1):+8.3f}% {t:9.4f} {t_ip / t:8.2f}x "
            f"{c:11.2f} {it:6d}"
        )

    # iLQR against BPTT shooting: iterations and time to reach the same cost.
    target = 1.01 * float(res.cost)
    print(f"\nIterations and time to reach cost <= {target:.5f} (iLQR's final cost + 1%):")
    for name, hist, t, n in (
        ("iLQR", res.history, t_il, int(res.iterations)),
        ("BPTT shooting, L-BFGS", res_lb.history, t_lb, n_lbfgs),
        ("BPTT shooting, Adam", res_ad.history, t_ad, n_adam),
    ):
        k = first_reach(hist, target)
        if k is None:
            print(f"  {name:24s} not reached in {n} iterations (best {float(np.min(hist)):.5f})")
        else:
            print(f"  {name:24s} {k:5d} iterations, ~{t * k / max(n, 1):.4f} s")
    xs = _rollout(system, cfg, x0, res.us)
    print(
        f"\niLQR final state: angle error {abs(float(xs[-1, 1])):.4f} rad, "
        f"cart {abs(float(xs[-1, 0])):.4f} m"
    )


if __name__ == "__main__":
    main()
