"""MACE (the `mace-torch` package) against diffsim's PaiNN and SchNet: same data, same budget.

The comparison a user would make before choosing a learned potential: every model is
trained on the same ethanol GFN2-xTB frames (the same split), for the same number of
optimiser steps, batch size and learning-rate schedule, with the same loss, then scored on
the same test frames; accuracy and speed are printed side by side.

- Data: `pot.load_or_generate("ethanol", 600)` (the user's data cache; GFN2-xTB through
  tblite), 400 train / 100 validation / 100 test; `--quick`: 80 frames generated here
  (Langevin MD at 500 K, a frame every 5 steps), 50 / 10 / 20. `--dataset FILE` reads
  any molecular data set instead.
- The data pipeline is checked before anything is trained: MACE's graphs
  (`AtomicData.from_config`) carry exactly our positions, atomic numbers, energies and
  forces (bitwise, in float32, the training precision of both); its edge list is
  exactly the set of ordered pairs within the cutoff that our dense path sums over; both
  sides start from the same per-element reference energies and force scale (least
  squares on composition, RMS force: what `pot.fit_energy_scale` sets). Our error
  metrics are recomputed here by hand and must equal `pot.evaluate`'s; MACE is scored by
  the same function.
- Models (float32, cutoff 5 A): PaiNN (32 features, 3 layers) and SchNet (32, 3): the
  `potential_train` defaults; MACE `ScaleShiftMACE` as in its "small" recipe but sized
  alike: 2 interactions, hidden 32x0e + 32x1o, spherical harmonics to l = 2,
  correlation order 3, 8 Bessel functions, residual interaction blocks.
- Training: Adam, peak lr 5e-3 (`--lr`), cosine decay to 1% (diffsim's `train_potential`
  schedule, written out for torch), batches of 16 drawn without replacement, loss
  mean((dE/n)^2)/s^2 + mean(dF^2)/s^2 with s the RMS force (diffsim's
  `force_matching_loss`); the best validation state (evaluated every steps/10) is kept.
  MACE's own training script adds EMA, AMSGrad, SWA and a different loss weighting;
  they are not used here, so both sides train the same way.
- Speed: the training wall time (ours includes XLA's compilation of the training and
  evaluation steps, tens of seconds on 2 cores, so short runs favour MACE's eager
  PyTorch), and energy + forces for one structure (median of
  repeats, interleaved; ours jitted, MACE eager PyTorch with its graph built once,
  `torch.get_num_threads()` threads). Both share the machine's cores.

Goal (issue 20): a fair side by side. No ratio is asserted; the printed table is the result.
`mace-torch` and `torch` are in the `bench` extra (`pip install -c constraints.txt
'.[bench]'`), which CI does not install.

Run: `.venv/bin/python benchmarks/bench_mace.py [--quick] [--steps N]`.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _timing import interleaved, machine_load

import diffsim.potentials as pot

CUTOFF = 5.0


def say(*args):
    print(*args, flush=True)


# --- data ------------------------------------------------------------------------------


def load_data(args):
    if args.dataset:
        data = pot.load_dataset(args.dataset)
    elif args.quick:
        data = pot.generate_molecule("ethanol", 80, stride=5, equilibrate_steps=100, seed=0)
    else:
        data = pot.load_or_generate("ethanol", 600, seed=0, log=say)
    if data.cells is not None:
        raise ValueError("bench_mace: molecular (non-periodic) data sets only")
    sizes = (50, 10, 20) if args.quick else (400, 100, 100)
    return data.split(*sizes, seed=0)


def reference_and_scale(train):
    """Per-element reference energies (least squares on composition, minimum norm) and the
    RMS force component: what `pot.fit_energy_scale` sets, for both sides."""
    elements = sorted(set(train.numbers.tolist()))
    counts = np.array([np.sum(train.numbers == z) for z in elements], np.float64)
    a = np.tile(counts, (len(train), 1))
    e_ref, *_ = np.linalg.lstsq(a, np.asarray(train.energies, np.float64), rcond=None)
    scale = float(np.sqrt(np.mean(np.asarray(train.forces, np.float64) ** 2)))
    return elements, e_ref, scale


def errors(energies, forces, data):
    """Energy MAE (meV/atom) and force MAE (meV/A) against `data`: the same function for
    every model."""
    n = len(data.numbers)
    e_mae = 1000 * float(np.mean(np.abs(np.asarray(energies) - data.energies) / n))
    f_mae = 1000 * float(np.mean(np.abs(np.asarray(forces) - data.forces)))
    return {"energy_mae": e_mae, "force_mae": f_mae}


# --- MACE (torch) ----------------------------------------------------------------------


def mace_graphs(data, z_table):
    from mace import data as mdata

    graphs = []
    for b in range(len(data)):
        config = mdata.Configuration(
            atomic_numbers=np.asarray(data.numbers),
            positions=np.asarray(data.positions[b], np.float64),
            properties={"energy": float(data.energies[b]), "forces": data.forces[b]},
            property_weights={"energy": 1.0, "forces": 1.0},
            cell=np.zeros((3, 3)),
            pbc=(False, False, False),
        )
        graphs.append(mdata.AtomicData.from_config(config, z_table=z_table, cutoff=CUTOFF))
    return graphs


def check_pipeline(graphs, data, elements):
    """MACE's graphs hold our frames exactly, and its edges are our dense path's pairs."""
    numbers = np.asarray(elements)
    for b, g in enumerate(graphs):
        assert np.array_equal(g.positions.double().numpy(), data.positions[b].astype(np.float32))
        z = numbers[g.node_attrs.argmax(-1).numpy()]
        assert np.array_equal(z, data.numbers)
        assert float(g.energy) == np.float32(data.energies[b])
        assert np.array_equal(g.forces.numpy(), data.forces[b].astype(np.float32))
        d = np.linalg.norm(data.positions[b][:, None] - data.positions[b][None], axis=-1)
        ours = {(i, j) for i, j in zip(*np.nonzero(d < CUTOFF)) if i != j}
        theirs = set(map(tuple, g.edge_index.numpy().T.tolist()))
        assert theirs == ours, (b, len(theirs), len(ours))


def make_mace(elements, e_ref, scale, avg_num_neighbors):
    import torch
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    return modules.ScaleShiftMACE(
        r_max=CUTOFF,
        num_bessel=8,
        num_polynomial_cutoff=6,
        max_ell=2,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2,
        num_elements=len(elements),
        hidden_irreps=o3.Irreps("32x0e + 32x1o"),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.asarray(e_ref, np.float64),
        avg_num_neighbors=avg_num_neighbors,
        atomic_numbers=list(elements),
        correlation=3,
        gate=torch.nn.functional.silu,
        atomic_inter_scale=scale,
        atomic_inter_shift=0.0,
    )


def mace_predict(model, graphs, batch_size=32):
    from mace.tools import torch_geometric

    es, fs = [], []
    loader = torch_geometric.dataloader.DataLoader(graphs, batch_size=batch_size, shuffle=False)
    for batch in loader:
        out = model(batch.to_dict(), training=False, compute_force=True)
        es.append(out["energy"].detach().double().numpy())
        fs.append(out["forces"].detach().double().numpy().reshape(-1, *graphs[0].forces.shape))
    return np.concatenate(es), np.concatenate(fs)


def cosine_lr(step, steps, lr, final_fraction=0.01):
    """diffsim's schedule: optax.cosine_decay_schedule(lr, steps, alpha=final_fraction)."""
    c = 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
    return lr * ((1 - final_fraction) * c + final_fraction)


def train_mace(model, train_graphs, val_graphs, n_atoms, scale, steps, batch_size, lr):
    import torch
    from mace.tools import torch_geometric

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(1)
    eval_every = max(steps // 10, 1)
    best = (math.inf, None, 0)
    val = torch_geometric.batch.Batch.from_data_list(val_graphs).to_dict()
    t0 = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, lr)
        idx = torch.randperm(len(train_graphs), generator=gen)[:batch_size].tolist()
        batch = torch_geometric.batch.Batch.from_data_list([train_graphs[i] for i in idx])
        b = batch.to_dict()
        out = model(b, training=True, compute_force=True)
        mse_e = torch.mean(((out["energy"] - b["energy"]) / n_atoms) ** 2)
        mse_f = torch.mean((out["forces"] - b["forces"]) ** 2)
        loss = (mse_e + mse_f) / scale**2
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            out = model(val, training=False, compute_force=True)
            v = float(
                (
                    torch.mean(((out["energy"] - val["energy"]) / n_atoms) ** 2)
                    + torch.mean((out["forces"] - val["forces"]) ** 2)
                ).detach()
            )
            if v < best[0]:
                best = (v, {k: t.detach().clone() for k, t in model.state_dict().items()}, step + 1)
    seconds = time.perf_counter() - t0
    model.load_state_dict(best[1])
    return model, seconds, best[2]


# --- diffsim ---------------------------------------------------------------------------


def train_ours(name, elements, train, val, steps, batch_size, lr):
    model = pot.make_model(
        name, elements, cutoff=CUTOFF, features=32, layers=3, key=jax.random.key(0)
    )
    model = pot.astype(model, jnp.float32)
    t0 = time.perf_counter()
    res = pot.train_potential(
        model,
        train,
        val,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        eval_every=max(steps // 10, 1),
        key=jax.random.key(1),
        progress=False,
    )
    return res.model, time.perf_counter() - t0, res.best_step


energy_and_forces = eqx.filter_jit(pot.energy_and_forces)


def ours_predict(model, data):
    species = model.species_of(data.numbers)
    es, fs = [], []
    for b in range(len(data)):
        e, f = energy_and_forces(model, species, jnp.asarray(data.positions[b], jnp.float32))
        es.append(float(e))
        fs.append(np.asarray(f, np.float64))
    return np.array(es), np.stack(fs)


# --- main ------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small generated set, 100 steps")
    parser.add_argument("--steps", type=int, default=None, help="default 1000 (quick: 100)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--dataset", default="", help="a molecular data set file (npz/extxyz)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # tblite's generator (see bench_potential)
    import mace
    import torch

    torch.set_default_dtype(torch.float32)
    # OMP_NUM_THREADS=1 above is for tblite; MACE gets every core, as XLA does.
    torch.set_num_threads(os.cpu_count() or 1)
    steps = args.steps or (100 if args.quick else 1000)
    batch_size = min(args.batch_size, 8) if args.quick else args.batch_size
    say(
        f"jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"mace-torch {mace.__version__}, float32, cutoff {CUTOFF} A, "
        f"{'quick' if args.quick else 'full'} mode"
    )
    say(machine_load())
    train, val, test = load_data(args)
    n_atoms = len(train.numbers)
    say(f"data: {len(train)} train / {len(val)} val / {len(test)} test frames of {n_atoms} atoms")

    # The same data, references and scale on both sides.
    from mace import tools

    elements, e_ref, scale = reference_and_scale(train)
    z_table = tools.AtomicNumberTable(list(elements))
    graphs = {
        k: mace_graphs(d, z_table) for k, d in (("train", train), ("val", val), ("test", test))
    }
    for k, d in (("train", train), ("val", val), ("test", test)):
        check_pipeline(graphs[k], d, elements)
    fitted = pot.fit_energy_scale(
        pot.make_model("painn", elements, cutoff=CUTOFF, key=jax.random.key(0)), train
    )
    # (ours in float32: the same numbers to float32 rounding)
    np.testing.assert_allclose(np.asarray(fitted.e_ref), e_ref, rtol=1e-6)
    assert abs(float(fitted.scale) - scale) < 1e-6 * scale
    avg_nn = float(np.mean([g.edge_index.shape[1] / n_atoms for g in graphs["train"]]))
    say(
        f"pipeline: MACE's graphs hold the same frames, numbers, energies and forces; its "
        f"edges are the {avg_nn:.2f} neighbours per atom of our dense path; same e_ref "
        f"{np.round(e_ref, 4).tolist()} eV and force scale {scale:.4f} eV/A"
    )

    rows = {}
    trained = {}
    for name in ("painn", "schnet"):
        model, seconds, best = train_ours(name, elements, train, val, steps, batch_size, args.lr)
        e, f = ours_predict(model, test)
        rows[name] = {**errors(e, f, test), "train_s": seconds, "best": best}
        ref = pot.evaluate(model, test)  # our metric function is evaluate's
        assert abs(ref["force_mae"] - rows[name]["force_mae"]) < 1e-3 * ref["force_mae"], ref
        assert abs(ref["energy_mae"] - rows[name]["energy_mae"]) < 1e-2 * ref["energy_mae"] + 1e-3
        rows[name]["params"] = sum(
            x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
        )
        trained[name] = model
        say(f"  trained {name}: {steps} steps in {seconds:.0f} s, {rows[name]}")
    mace_model = make_mace(elements, e_ref, scale, avg_nn)
    mace_model, seconds, best = train_mace(
        mace_model, graphs["train"], graphs["val"], n_atoms, scale, steps, batch_size, args.lr
    )
    e, f = mace_predict(mace_model, graphs["test"])
    rows["MACE"] = {**errors(e, f, test), "train_s": seconds, "best": best}
    rows["MACE"]["params"] = sum(p.numel() for p in mace_model.parameters() if p.requires_grad)
    say(f"  trained MACE: {steps} steps in {seconds:.0f} s, {rows['MACE']}")

    # Energy + forces for one structure, every model in alternation.
    from mace.tools import torch_geometric

    one = torch_geometric.batch.Batch.from_data_list(graphs["test"][:1]).to_dict()
    r0 = jnp.asarray(test.positions[0], jnp.float32)
    calls = {
        name: (energy_and_forces, (m, m.species_of(test.numbers), r0))
        for name, m in trained.items()
    }

    def mace_call():
        out = mace_model(one, training=False, compute_force=True)
        return out["forces"].detach()

    calls["MACE"] = (mace_call, ())
    times = interleaved(calls, repeats=20 if args.quick else 50)
    say(machine_load())
    say()
    say(
        "| model | parameters | steps | train time (s) | best step | test E MAE (meV/atom) | "
        "test F MAE (meV/A) | E+F per structure (ms) |"
    )
    say("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    labels = {"painn": "diffsim PaiNN", "schnet": "diffsim SchNet", "MACE": "MACE (mace-torch)"}
    for name, r in rows.items():
        say(
            f"| {labels[name]} | {r['params']:,} | {steps} | {r['train_s']:.0f} | {r['best']} | "
            f"{r['energy_mae']:.2f} | {r['force_mae']:.1f} | {1e3 * times[name].median:.2f} |"
        )
    say("(train time: ours includes XLA compilation; E+F: ours jitted, MACE eager PyTorch)")
    say()
    p, m = rows["painn"], rows["MACE"]
    say(
        f"PaiNN / MACE: force MAE {p['force_mae'] / m['force_mae']:.2f}, training time "
        f"{p['train_s'] / m['train_s']:.2f}, E+F time "
        f"{times['painn'].median / times['MACE'].median:.2f} (below 1: PaiNN better)"
    )


if __name__ == "__main__":
    main()
