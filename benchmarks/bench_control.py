"""Cart-pole swing-up: diffsim (iLQR, BPTT shooting) against CasADi + IPOPT, side by side.

Same problem for every method (the `cartpole_swingup` experiment's default config):
RK4 with one step per control interval dt = 0.05 s, horizon 80 steps, force smoothly
saturated at +-20 N, cost 0.01 sum u^2 + terminal quadratic, the same initial guess.
CasADi solves it by direct multiple shooting with IPOPT (exact Hessian, MUMPS), the NLP
in SX (`expand=True`) and the solver built once; re-solves are timed, as iLQR is timed
after compilation. All in float64. Both must reach the same optimum (costs within 0.1%)
before any time is compared; then each is timed to the same cost target (the controls
rolled out through the model). Wall times are medians of repeats after a warm-up; compile
(JAX tracing + XLA; CasADi's solver construction) reported apart.

    .venv/bin/python benchmarks/bench_control.py [--quick]
"""

from __future__ import annotations

import argparse
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


class CasadiSwingUp:
    """The swing-up as one NLP (direct multiple shooting, SX), IPOPT built once per
    iteration limit and re-solved from the same initial guess, as a user re-solves it."""

    def __init__(self, cfg, system, x0, us0):
        import casadi as ca

        self.ca = ca
        mc, mp, l, g = (
            float(v) for v in (system.cart_mass, system.pole_mass, system.length, system.gravity)
        )
        umax = cfg.max_force

        def f(x, u):
            F = umax * ca.tanh(u / umax)
            th, v, w = x[1], x[2], x[3]
            c, s = ca.cos(th), ca.sin(th)
            M = ca.vertcat(ca.horzcat(mc + mp, mp * l * c), ca.horzcat(mp * l * c, mp * l**2))
            rhs = ca.vertcat(F + mp * l * s * w**2, mp * g * l * s)
            acc = ca.solve(M, rhs)
            return ca.vertcat(v, w, acc[0], acc[1])

        h, T = cfg.dt, cfg.horizon
        X, U = ca.SX.sym("X", 4, T + 1), ca.SX.sym("U", 1, T)
        gaps = [X[:, 0] - np.asarray(x0)]
        for k in range(T):
            x, u = X[:, k], U[0, k]
            k1 = f(x, u)
            k2 = f(x + h / 2 * k1, u)
            k3 = f(x + h / 2 * k2, u)
            k4 = f(x + h * k3, u)
            gaps.append(X[:, k + 1] - (x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)))
        xT = X[:, T]
        Qf = np.diag(cfg.terminal_weights)
        self.nlp = {
            "x": ca.veccat(X, U),
            "f": cfg.effort_weight * ca.sumsqr(U) + ca.mtimes([xT.T, Qf, xT]),
            "g": ca.vertcat(*gaps),
        }
        self.n_g = 4 * (T + 1)
        xs_init = np.asarray(_rollout(system, cfg, x0, us0))
        self.guess = np.concatenate([xs_init.reshape(-1), np.asarray(us0).reshape(-1)])
        self.T = T

    def solver(self, max_iter=1000):
        """An IPOPT solver (exact Hessian, MUMPS), built once: expand=True keeps it SX."""
        return self.ca.nlpsol(
            "swingup",
            "ipopt",
            self.nlp,
            {
                "expand": True,
                "print_time": False,
                "ipopt": {"print_level": 0, "tol": 1e-10, "max_iter": max_iter, "sb": "yes"},
            },
        )

    def solve(self, solver):
        sol = solver(x0=self.guess, lbg=0.0, ubg=0.0)
        return np.asarray(sol["x"]).reshape(-1)[-self.T :].reshape(self.T, 1)


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
    repeats = 3 if args.quick else 7
    cfg = Config()
    system, model, cost, x0 = problem(cfg)
    us0 = cfg.init_noise * jax.random.normal(jax.random.key(cfg.seed), (cfg.horizon, 1))
    J = eqx.filter_jit(lambda us: trajectory_cost(model, cost, x0, us))
    rows = []

    # CasADi + IPOPT, direct multiple shooting: the NLP and the solver built once, then
    # re-solves timed (as iLQR is timed after compilation).
    nlp = CasadiSwingUp(cfg, system, x0, us0)
    t0 = time.perf_counter()
    ip_solver = nlp.solver()
    build_ip = time.perf_counter() - t0
    us_ip, t_ip, _ = timed(lambda: nlp.solve(ip_solver), repeats)
    it_ip = int(ip_solver.stats()["iter_count"])
    J_ip = float(J(jnp.asarray(us_ip)))
    rows.append(("CasADi+IPOPT (multiple shooting, SX)", J_ip, t_ip, build_ip, it_ip))

    # iLQR.
    ilqr_iters = 100
    # ilqr compiles itself; a jit around it would add its input checks (host callbacks).
    solve = lambda us: ilqr(model, cost, x0, us, max_iter=ilqr_iters, tol=1e-10)
    res, t_il, c_il = timed(lambda: solve(us0), repeats)
    rows.append(
        (f"diffsim iLQR (<= {ilqr_iters} it)", float(res.cost), t_il, c_il, int(res.iterations))
    )
    # Agreement before any comparison of times: the same optimum (local optima of the
    # swing-up differ by far more than this).
    gap = abs(float(res.cost) / J_ip - 1)
    assert gap < 1e-3, f"iLQR's cost {float(res.cost)} and IPOPT's {J_ip} differ by {gap:.1e}"
    print(f"iLQR and IPOPT reach the same optimum: costs differ by {100 * gap:.3f}% (< 0.1%)")
    # The two timed in alternation, so that their ratio holds while the load changes.
    both = _timing.interleaved(
        {"ipopt": (lambda: nlp.solve(ip_solver), ()), "ilqr": (solve, (us0,))}, repeats
    )
    t_ip, t_il = both["ipopt"].median, both["ilqr"].median
    rows[0] = rows[0][:2] + (t_ip,) + rows[0][3:]
    rows[1] = rows[1][:2] + (t_il,) + rows[1][3:]
    print(
        f"Interleaved medians of {repeats}: IPOPT {t_ip:.4f} s, iLQR {t_il:.4f} s; iLQR runs at "
        f"{t_ip / t_il:.2f}x IPOPT's speed; {_timing.machine_load()}"
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
        f"{jax.devices()[0].platform}; median of {repeats} runs; {_timing.machine_load()}"
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

    # iLQR against IPOPT to the same cost target: each solver stopped at the first
    # iteration count whose controls, rolled out through the model, cost at most the
    # target; that solve timed (median of repeats) after compilation / construction.
    for rel in (1e-2, 1e-4):
        target_ip = (1 + rel) * max(J_ip, float(res.cost))
        k_il = first_reach(res.history, target_ip)
        assert k_il is not None
        to_target = lambda us, k=k_il: ilqr(model, cost, x0, us, max_iter=k, tol=1e-10)
        r_k, t_k, _ = timed(lambda f=to_target: f(us0), repeats)
        assert float(r_k.cost) <= target_ip
        for m in range(1, it_ip + 1):
            solver_m = nlp.solver(max_iter=m)
            if float(J(jnp.asarray(nlp.solve(solver_m)))) <= target_ip:
                break
        us_m, t_m, _ = timed(lambda sv=solver_m: nlp.solve(sv), repeats)
        assert float(J(jnp.asarray(us_m))) <= target_ip
        print(
            f"\nTo cost <= {target_ip:.5f} (the higher final cost + {rel:g}, controls rolled out): "
            f"IPOPT {m} iterations {t_m:.4f} s, iLQR {k_il} iterations {t_k:.4f} s; "
            f"iLQR takes {t_k / t_m:.2f}x IPOPT's time; {_timing.machine_load()}"
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
