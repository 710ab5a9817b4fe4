"""Learned-potential benchmark: diffsim's PaiNN and SchNet against a NequIP-style model.

Two systems, float32 on CPU, cutoff 5 Angstrom for every model:

- ethanol (9 atoms, ASE's `CH3CH2OH` rattled by 0.05 Angstrom), all pairs (dense path);
- fcc copper, 256 atoms (a = 3.61 Angstrom, 4x4x4 cubic cells, rattled), periodic,
  one neighbor list (`neighbor_list(..., skin=0)`) shared by all models; the e3nn
  reference reads it as a directed edge list (both directions of each pair).

Models: `PaiNN` (features 64 and 32, 3 layers), `SchNet` (64, 3 layers), and the
reference in `_nequip_style_e3nn.py`: a NequIP-style model written here with e3nn-jax
(not the `nequip` package; tested in `tests/potentials/test_nequip_style_e3nn.py`), 3
layers of 32x0e + 32x1o + 32x2e,
spherical harmonics to l = 2, Bessel basis with the polynomial envelope, radial MLP
weighting each tensor-product path, gate nonlinearity, scalar readout.

Reported, each the median of repeats after a warm-up (compile + first call listed
separately):

- energy alone and energy + forces (`jax.value_and_grad`) per configuration, and
  their ratio;
- the reference method's own force call: GFN2-xTB through tblite (ethanol; skipped
  without tblite) and ASE's EMT (copper);
- NVE steps per second at 300 K (the median of 5 runs after a first one, 3 in `--quick`;
  copper 20 steps a run, 5 in `--quick`; every model's runs and ASE's interleaved):
  diffsim's `NVE` (velocity Verlet) through `simulate` with our model and with the
  e3nn reference (ethanol: dt 0.5 fs, dense; copper: dt 2 fs, neighbor list with skin
  0.5 Angstrom, updates and rebuilds included), and ASE's
  `VelocityVerlet` with tblite / EMT; the largest total-energy excursion is printed as
  a sanity check (meaningful for the trained ethanol models only);
- accuracy at an equal training budget (full mode): each model trained by
  `train_potential` with the same optimiser, steps, batches and split on ethanol
  GFN2-xTB data (600 frames of 500 K Langevin MD, `load_or_generate`, cached under
  `data/`), test force MAE in meV/Angstrom.

Goals: PaiNN at least 2x faster than the e3nn reference at equal or better force
MAE; energy + forces at most 3x the energy alone.

Timed calls are interleaved across models (E, E+F, next model, ...; `_timing.interleaved`)
so that the load of a shared machine affects both sides of every ratio alike. tblite runs with
`OMP_NUM_THREADS=1` unless set otherwise: its OpenMP threads spin against XLA's, and
one thread is its fastest setting for 9 atoms.

`--equal-time` also trains PaiNN F=64, from the same initial weights, for as many steps
as fit in the reference's training wall time (speed at equal accuracy); this adds the
reference's training time (about 5 minutes here) to the run.

Run: `.venv/bin/python benchmarks/bench_potential.py [--quick] [--equal-time]`.
"""

from __future__ import annotations

import argparse
import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _nequip_style_e3nn import NequIPStyleE3nn, count_parameters
from _timing import interleaved, machine_load, timed

import diffsim.molecular as md
import diffsim.potentials as pot

CUTOFF = 5.0
REFERENCE = "NequIP-style (e3nn-jax, ours)"


def say(*args):
    print(*args, flush=True)


# --- systems and models ----------------------------------------------------------------


def ethanol():
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    atoms.rattle(stdev=0.05, seed=0)
    return atoms


def copper():
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)
    atoms.rattle(stdev=0.05, seed=0)
    return atoms


def make_models(elements, avg_num_neighbors, names, key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    builders = {
        "PaiNN F=64": lambda: pot.PaiNN(elements, cutoff=CUTOFF, features=64, key=k1),
        "PaiNN F=32": lambda: pot.PaiNN(elements, cutoff=CUTOFF, features=32, key=k2),
        "SchNet F=64": lambda: pot.SchNet(elements, cutoff=CUTOFF, features=64, key=k3),
        REFERENCE: lambda: NequIPStyleE3nn(
            elements, cutoff=CUTOFF, avg_num_neighbors=avg_num_neighbors, key=k4
        ),
    }
    return {name: builders[name]() for name in names}


# Model, species and the neighbour list are arguments (not closed over), so the weights
# are not baked into the compiled program as constants.
@eqx.filter_jit
def energy_fn(model, positions, species, nbrs, space):
    return model(positions, species, nbrs, space=space)


@eqx.filter_jit
def energy_forces_fn(model, positions, species, nbrs, space):
    e, g = jax.value_and_grad(lambda r: model(r, species, nbrs, space=space))(positions)
    return e, -g


# --- self-test: invariance -------------------------------------------------------------


# A function of its own, so the check (before any timing) leaves the timed function's
# compilation to be measured.
@eqx.filter_jit
def _checked_energy_forces(model, positions, species, nbrs, space):
    e, g = jax.value_and_grad(lambda r: model(r, species, nbrs, space=space))(positions)
    return e, -g


def invariance_check(models, atoms):
    """Max |E(Q r + t) - E(r)| / |E| and max |F(Q r + t) - F(r) Q^T| over a random
    rotation Q and the rotation-inversion -Q (O(3)), float32, free space."""
    from scipy.spatial.transform import Rotation

    r = jnp.asarray(atoms.positions, jnp.float32)
    q = np.asarray(Rotation.random(random_state=1).as_matrix())
    shift = jnp.array([1.0, -2.0, 0.5], jnp.float32)
    out = {}
    for name, model in models.items():
        species = model.species_of(atoms.numbers)
        e0, f0 = _checked_energy_forces(model, r, species, None, md.FreeSpace())
        worst_e = worst_f = 0.0
        for m in (q, -q):
            mq = jnp.asarray(m, jnp.float32)
            e1, f1 = _checked_energy_forces(model, r @ mq.T + shift, species, None, md.FreeSpace())
            worst_e = max(worst_e, abs(float(e1 - e0)) / max(abs(float(e0)), 1e-6))
            worst_f = max(worst_f, float(jnp.max(jnp.abs(f1 - f0 @ mq.T))))
        out[name] = (worst_e, worst_f, float(jnp.max(jnp.abs(f0))))
    return out


# --- timings ---------------------------------------------------------------------------


def bench_evaluation(models, atoms, space, nbrs, repeats):
    """Energy and energy + forces per model: compile first, then timed calls
    interleaved across models (E, E+F, next model, ...), so that a change in the load
    of a shared machine hits every figure of a ratio alike; medians."""
    r = jnp.asarray(atoms.positions, jnp.float32)
    calls = {}
    for name, model in models.items():
        args = (model, r, model.species_of(atoms.numbers), nbrs, space)
        calls[(name, "e")] = (energy_fn, args)
        calls[(name, "ef")] = (energy_forces_fn, args)
    times = interleaved(calls, repeats)
    out = {}
    for name, model in models.items():
        e, ef = times[(name, "e")], times[(name, "ef")]
        out[name] = res = {
            "params": count_parameters(model),
            "e": e.median,
            "ef": ef.median,
            "e_compile": e.first,
            "ef_compile": ef.first,
        }
        say(
            f"  {name:12s} {res['params']:7d} params  E {1e3 * res['e']:8.2f} ms  "
            f"E+F {1e3 * res['ef']:8.2f} ms  ratio {res['ef'] / res['e']:.2f}  "
            f"(compile + first call {res['e_compile']:.1f} / {res['ef_compile']:.1f} s)"
        )
    return out


def reference_calculator(kind):
    """Gives (label, calculator) or (label, None) if it is not installed."""
    if kind == "xtb":
        try:
            from tblite.ase import TBLite
        except ImportError:
            return "tblite GFN2-xTB", None
        return "tblite GFN2-xTB", TBLite(method="GFN2-xTB", verbosity=0)
    from ase.calculators.emt import EMT

    return "ASE EMT", EMT()


def bench_reference_forces(atoms, calc, repeats):
    """Median seconds of one force call at new positions (the MD use: no caching)."""
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(0)
    atoms.get_forces()  # set-up (and an initial wavefunction for xTB)

    def moved_forces():
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        return atoms.get_forces()

    return timed(moved_forces, repeats=repeats).median


def bench_md(models, atoms, space, skin, dt_fs, steps, repeats, trained, ase=None):
    """Steps per second of diffsim's `NVE` through `simulate`, per model, and of ASE's
    `VelocityVerlet` with the reference method's calculator (`ase = (label, calc,
    steps)`), all runs interleaved (model 1, model 2, ..., ASE, model 1, ...), each the
    median of `repeats` runs after a first one (compilation, the calculator's set-up);
    and the largest total-energy excursion (a sanity check, meaningful for trained models:
    untrained ones have arbitrary forces)."""
    from ase import units

    r = jnp.asarray(atoms.positions, jnp.float32)
    masses = jnp.asarray(atoms.get_masses(), jnp.float32)
    kT = 300.0 * units.kB
    v = md.random_velocities(
        len(atoms), 3, kT, key=jax.random.key(0), mass=masses, dtype=jnp.float32
    )
    nbrs = None if skin is None else md.neighbor_list(r, space, CUTOFF, skin=skin)
    calls, n_steps = {}, {}
    for name, model in models.items():
        species = model.species_of(atoms.numbers)
        vv = md.NVE(model.bind(species, space), dt=dt_fs * units.fs, mass=masses)
        s0 = vv.init(r, v, nbrs)

        def run(vv=vv, s0=s0):
            return md.simulate(vv, s0, steps, chunk=steps)

        calls[name], n_steps[name] = (run, ()), steps
    if ase is not None:
        from ase.md.velocitydistribution import thermalize_momenta
        from ase.md.verlet import VelocityVerlet

        label, calc, ase_steps = ase
        a = atoms.copy()
        a.calc = calc
        thermalize_momenta(a, 300.0, rng=np.random.default_rng(0))
        dyn = VelocityVerlet(a, timestep=dt_fs * units.fs)
        calls[label], n_steps[label] = (dyn.run, (ase_steps,)), ase_steps
    times = interleaved(calls, repeats)
    out = {}
    for name in models:
        t = times[name]
        _, outs = t.out
        total = np.asarray(outs["potential"] + outs["kinetic"], np.float64)
        drift = 1e3 * float(np.max(np.abs(total - total[0]))) / len(atoms)
        sps = steps / t.median
        out[name] = {"sps": sps, "compile": t.first - t.median, "drift": drift}
        say(
            f"  MD {name:12s} {sps:8.1f} steps/s (median of {repeats}; compile "
            f"{t.first - t.median:.1f} s), max |E_tot - E_tot(0)| {drift:.3g} meV/atom over "
            f"{steps} steps{'' if trained else ' (untrained model)'}"
        )
    if ase is not None:
        label = ase[0]
        out["ase"] = n_steps[label] / times[label].median
        say(f"  MD ASE VelocityVerlet + {label}: {out['ase']:.1f} steps/s (median of {repeats})")
    return out


# --- accuracy at an equal training budget ----------------------------------------------


def train_and_test(models, steps, batch_size, lr, n_configs, log, equal_time=()):
    """Gives ({name: trained model}, {name: metrics}) on ethanol GFN2-xTB data.

    Every model gets `steps` steps. The models named in `equal_time` are then trained
    again from their initial weights for as many steps as take the e3nn reference's
    training time (speed at equal accuracy), under `metrics[name]["equal_time"]`.
    """
    try:
        ds = pot.load_or_generate("ethanol", n_configs, seed=0, cache_dir="data", log=log)
    except ImportError as e:
        log(f"no ethanol dataset and cannot generate one ({e}); skipping training")
        return models, {}
    n_test = n_val = n_configs // 6
    train, val, test = ds.split(n_configs - n_val - n_test, n_val, n_test, seed=0)
    log(f"ethanol: {len(train)} train / {len(val)} val / {len(test)} test frames")

    def run(model, n_steps):
        t = time.perf_counter()
        res = pot.train_potential(
            model,
            train,
            val,
            steps=n_steps,
            batch_size=batch_size,
            lr=lr,
            eval_every=max(n_steps // 10, 1),
            key=jax.random.key(1),
            progress=False,
        )
        seconds = time.perf_counter() - t
        ev = pot.evaluate(res.model, test)
        return res.model, {**ev, "train_s": seconds, "best_step": res.best_step, "steps": n_steps}

    def report(name, m):
        log(
            f"  trained {name:12s} {m['steps']} steps in {m['train_s']:5.0f} s: test force MAE "
            f"{m['force_mae']:.1f} meV/A, energy MAE {m['energy_mae']:.2f} meV/atom "
            f"(best step {m['best_step']})"
        )

    trained, metrics = {}, {}
    for name, model in models.items():
        trained[name], metrics[name] = run(model, steps)
        report(name, metrics[name])
    for name in equal_time:
        if name not in models or REFERENCE not in metrics:
            continue
        budget = metrics[REFERENCE]["train_s"]
        n_steps = max(int(round(steps * budget / metrics[name]["train_s"])), 1)
        _, m = run(models[name], n_steps)
        metrics[name]["equal_time"] = m
        report(f"{name} (the reference's training time)", m)
    return trained, metrics


# --- report ----------------------------------------------------------------------------


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def rate(x):
    return "-" if x is None else (f"{x:.0f}" if x >= 10 else f"{x:.2f}")


def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def table(results):
    say()
    say(
        "| system | model | params | E (ms) | E+F (ms) | (E+F)/E | E+F speed-up vs NequIP-style | "
        "E+F speed-up vs ref. method | MD steps/s | MD speed-up vs NequIP-style | "
        "test force MAE (meV/A) | train time (s) |"
    )
    say("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for system, res in results.items():
        ev, mdr, acc = res["eval"], res["md"], res["accuracy"]
        ref_ef = ev[REFERENCE]["ef"]
        ref_sps = mdr.get(REFERENCE, {}).get("sps")
        label, ref_t, ref_md_sps = res["reference"]
        for name, r in ev.items():
            sps = mdr.get(name, {}).get("sps")
            mae = acc.get(name, {}).get("force_mae")
            tr = acc.get(name, {}).get("train_s")
            say(
                f"| {system} | {name} | {r['params']:,} | {1e3 * r['e']:.2f} | "
                f"{1e3 * r['ef']:.2f} | {r['ef'] / r['e']:.2f} | {ref_ef / r['ef']:.2f}x | "
                f"{ratio(ref_t, r['ef'])} | {rate(sps)} | "
                f"{ratio(sps, ref_sps)} | "
                f"{fmt(mae, '.1f')} | {fmt(tr, '.0f')} |"
            )
        for name in ev:
            eq = acc.get(name, {}).get("equal_time")
            if eq is not None:
                say(
                    f"| {system} | {name}, trained for the reference's training time "
                    f"({eq['steps']} steps) | | | | | | | | | {eq['force_mae']:.1f} | "
                    f"{eq['train_s']:.0f} |"
                )
        if ref_t is not None:
            say(
                f"| {system} | {label} (own force call) | - | - | {1e3 * ref_t:.2f} | - | "
                f"{ref_ef / ref_t:.2f}x | 1.00x | {rate(ref_md_sps)} | "
                f"{ratio(ref_md_sps, ref_sps)}"
                " | (reference) | - |"
            )


def verdicts(results):
    say()
    say("goals:")
    for system, res in results.items():
        ev, acc = res["eval"], res["accuracy"]
        ref = ev[REFERENCE]
        for name, r in ev.items():
            if not name.startswith("PaiNN"):
                continue
            speed = ref["ef"] / r["ef"]
            mae, ref_mae = (acc.get(k, {}).get("force_mae") for k in (name, REFERENCE))
            if mae is None or ref_mae is None:
                acc_txt, ok_acc = "force MAE not measured", None
            else:
                ok_acc = mae <= ref_mae
                acc_txt = f"force MAE {mae:.1f} vs {ref_mae:.1f} meV/A"
            ok_speed = speed >= 2.0
            both = "PASS" if ok_speed and ok_acc else ("?" if ok_acc is None else "FAIL")
            say(
                f"  {system}, {name}: E+F {speed:.2f}x faster than the NequIP-style reference "
                f"({'>=' if ok_speed else '<'} 2x), {acc_txt} (equal steps) -> {both}"
            )
            eq = acc.get(name, {}).get("equal_time")
            if eq is not None and ref_mae is not None:
                ok = eq["force_mae"] <= ref_mae
                say(
                    f"  {system}, {name}: at the reference's training time ({eq['steps']} steps, "
                    f"{eq['train_s']:.0f} s): force MAE {eq['force_mae']:.1f} vs {ref_mae:.1f} "
                    f"meV/A -> {'PASS' if ok and ok_speed else 'FAIL'}"
                )
            r_ef = r["ef"] / r["e"]
            say(
                f"  {system}, {name}: (E+F)/E = {r_ef:.2f} "
                f"-> {'PASS' if r_ef <= 3.0 else 'FAIL'} (goal <= 3)"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="no training, fewer models, repeats and MD steps"
    )
    parser.add_argument("--train-steps", type=int, default=None, help="default 1000 (quick: 0)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--configs", type=int, default=600, help="ethanol dataset frames")
    parser.add_argument(
        "--equal-time",
        action="store_true",
        help="also train PaiNN F=64 for as long (wall clock) as the e3nn reference took",
    )
    args = parser.parse_args()
    # tblite's OpenMP threads spin against XLA's on a shared machine (GFN2-xTB MD ran
    # 30x slower with the default here); one thread is its fastest setting for 9 atoms.
    # Read when tblite is first imported, which is below.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    quick = args.quick
    train_steps = args.train_steps if args.train_steps is not None else (0 if quick else 1000)
    repeats = 3 if quick else 7
    names = (
        ["PaiNN F=64", REFERENCE]
        if quick
        else ["PaiNN F=64", "PaiNN F=32", "SchNet F=64", REFERENCE]
    )
    md_names = ["PaiNN F=64", REFERENCE] if quick else ["PaiNN F=64", "PaiNN F=32", REFERENCE]
    say(
        f"jax {jax.__version__}, backend {jax.default_backend()}, float32, cutoff {CUTOFF} A, "
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
        f"{'quick' if quick else 'full'} mode"
    )
    say(machine_load())
    results = {}

    # Ethanol.
    atoms = ethanol()
    elements = sorted(set(atoms.numbers.tolist()))
    models = make_models(elements, 8.0, names, jax.random.key(0))
    accuracy = {}
    if train_steps > 0:
        say(f"training on ethanol: {train_steps} steps, batch {args.batch_size}, lr {args.lr}")
        models, accuracy = train_and_test(
            models,
            train_steps,
            args.batch_size,
            args.lr,
            args.configs,
            say,
            equal_time=["PaiNN F=64"] if args.equal_time else (),
        )
    say(f"ethanol ({len(atoms)} atoms, dense: {len(atoms) * (len(atoms) - 1) // 2} pairs):")
    # Every model is checked before anything is timed: E invariant and F equivariant under
    # O(3) and translations (float32: measured <= 6.4e-7 relative in E, <= 3e-6 of max |F|).
    say("  invariance self-test (a random rotation Q, and -Q; plus a translation):")
    for name, (de, df, fmax) in invariance_check(models, atoms).items():
        say(
            f"    {name:12s} max |dE|/|E| {de:.1e}, max |F(Qr) - Q F(r)| {df:.1e} eV/A "
            f"(max |F| {fmax:.2f})"
        )
        assert de < 1e-5 and df < 1e-4 * max(1.0, fmax), f"{name} is not E(3) invariant"
    ev = bench_evaluation(models, atoms, md.FreeSpace(), None, repeats)
    label, calc = reference_calculator("xtb")
    ref_t = ref_sps = None
    if calc is None:
        say("  tblite is not importable: skipping the GFN2-xTB reference")
    else:
        ref_t = bench_reference_forces(atoms, calc, repeats=20)
        say(f"  {label} force call {1e3 * ref_t:.2f} ms")
    md_steps = 100 if quick else 1000
    mdr = bench_md(
        {k: models[k] for k in md_names},
        atoms,
        md.FreeSpace(),
        None,
        0.5,
        md_steps,
        repeats=3 if quick else 5,
        trained=bool(accuracy),
        ase=None if calc is None else (label, calc, 50 if quick else 300),
    )
    ref_sps = mdr.pop("ase", None)
    results["ethanol (9)"] = {
        "eval": ev,
        "md": mdr,
        "accuracy": accuracy,
        "reference": (label, ref_t, ref_sps),
    }

    # Copper.
    atoms = copper()
    space = md.space_from_atoms(atoms)
    r = jnp.asarray(atoms.positions, jnp.float32)
    nbrs = md.neighbor_list(r, space, CUTOFF, skin=0.0)
    pairs = int(nbrs.count)
    say(
        f"copper ({len(atoms)} atoms, periodic): {pairs} pairs within {CUTOFF} A "
        f"({2 * pairs} directed edges, {2 * pairs / len(atoms):.1f} neighbors per atom), "
        f"list capacity {nbrs.capacity}"
    )
    models = make_models([29], 2 * pairs / len(atoms), names, jax.random.key(0))
    ev = bench_evaluation(models, atoms, space, nbrs, repeats)
    label, calc = reference_calculator("emt")
    ref_t = bench_reference_forces(atoms, calc, repeats=repeats)
    say(f"  {label} force call {1e3 * ref_t:.2f} ms")
    md_steps = 5 if quick else 20
    mdr = bench_md(
        {k: models[k] for k in md_names},
        atoms,
        space,
        0.5,
        2.0,
        md_steps,
        repeats=3 if quick else 5,
        trained=False,
        ase=(label, calc, md_steps),
    )
    ref_sps = mdr.pop("ase")
    results[f"Cu fcc ({len(atoms)})"] = {
        "eval": ev,
        "md": mdr,
        "accuracy": {},
        "reference": (label, ref_t, ref_sps),
    }

    table(results)
    say(machine_load())
    verdicts(results)
    say()
    say("compile + first call (s): E / E+F / MD")
    for system, res in results.items():
        for name, r in res["eval"].items():
            mdc = res["md"].get(name, {}).get("compile")
            say(
                f"  {system}, {name}: {r['e_compile']:.1f} / {r['ef_compile']:.1f} / "
                f"{fmt(mdc, '.1f')}"
            )


if __name__ == "__main__":
    main()
