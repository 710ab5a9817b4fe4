"""Reference datasets: generators against their calculators, files, splits, the cache."""

import dataclasses
import json

import ase  # noqa: F401  (the generators need it: a broken install fails here, loudly)
import numpy as np
import pytest

import diffsim.molecular as md
import diffsim.potentials as pot


@pytest.fixture(scope="module")
def lj():
    return pot.generate_lj_clusters(4, equilibrate_steps=100, stride=5, seed=1)


@pytest.fixture(scope="module")
def cu():
    return pot.generate_copper(4, repeat=2, equilibrate_steps=20, stride=5, seed=2)


def _lj_calc(ds):
    from ase.calculators.lj import LennardJones

    s = ds.info["settings"]
    return LennardJones(
        sigma=s["sigma"], epsilon=s["epsilon"], rc=3 * s["sigma"], ro=2 * s["sigma"], smooth=True
    )


def _emt_calc(ds):
    from ase.calculators.emt import EMT

    return EMT()


def _check_against_calculator(ds, frame, make_calc, coords, h=1e-5, tol=1e-6):
    """The stored labels equal the calculator's, and forces are -dE/dx (central diffs)."""
    atoms = ds.to_atoms(frame)
    atoms.calc = make_calc(ds)
    assert abs(atoms.get_potential_energy() - ds.energies[frame]) < 1e-10
    np.testing.assert_allclose(atoms.get_forces(), ds.forces[frame], atol=1e-10)
    for a, k in coords:
        energies = []
        for sign in (1, -1):
            probe = atoms.copy()
            probe.positions[a, k] += sign * h
            probe.calc = make_calc(ds)
            energies.append(probe.get_potential_energy())
        fd = -(energies[0] - energies[1]) / (2 * h)
        assert abs(fd - ds.forces[frame, a, k]) < tol, (a, k, fd, ds.forces[frame, a, k])


def test_lj_clusters(lj):
    assert len(lj) == 4 and lj.n_atoms == 13 and lj.cells is None
    assert lj.positions.shape == (4, 13, 3) and lj.forces.shape == (4, 13, 3)
    assert lj.positions.dtype == np.float64 and lj.elements == (18,)
    assert isinstance(lj.space(0), md.FreeSpace)
    assert lj.min_distances().min() > 0.9 * lj.info["settings"]["sigma"]
    # bound cluster: energy well below zero, distinct frames
    assert np.all(lj.energies < -0.3) and len(np.unique(lj.energies)) == 4
    assert lj.info["generator"] == "generate_lj_clusters" and lj.info["settings"]["seed"] == 1
    assert lj.info["label_calls"] > 100 and lj.info["versions"]["ase"]
    _check_against_calculator(lj, 2, _lj_calc, [(0, 0), (6, 1), (12, 2)])


def test_copper(cu):
    assert len(cu) == 4 and cu.n_atoms == 32 and cu.cells.shape == (4, 3, 3)
    # first half strained (triclinic), second half MD in the cubic cell
    assert isinstance(cu.space(0), md.TriclinicBox) and isinstance(cu.space(1), md.TriclinicBox)
    assert isinstance(cu.space(3), md.PeriodicBox)
    np.testing.assert_array_equal(cu.cells[3], np.eye(3) * 7.22)
    assert 2.0 < cu.min_distances().min() < 2.55
    frac = np.einsum("bni,bij->bnj", cu.positions, np.linalg.inv(cu.cells))
    assert np.all(frac > -1e-9) and np.all(frac < 1 + 1e-9)  # wrapped
    _check_against_calculator(cu, 0, _emt_calc, [(0, 0), (17, 2)])
    _check_against_calculator(cu, 3, _emt_calc, [(31, 1)])


def test_generators_deterministic(lj):
    again = pot.generate_lj_clusters(4, equilibrate_steps=100, stride=5, seed=1)
    np.testing.assert_array_equal(again.positions, lj.positions)
    np.testing.assert_array_equal(again.forces, lj.forces)
    other = pot.generate_lj_clusters(4, equilibrate_steps=100, stride=5, seed=2)
    assert not np.allclose(other.positions, lj.positions)


@pytest.mark.parametrize("suffix", [".npz", ".extxyz"])
@pytest.mark.parametrize("which", ["lj", "cu"])
def test_round_trip(tmp_path, suffix, which, request):
    ds = request.getfixturevalue(which)
    path = pot.save_dataset(tmp_path / f"d{suffix}", ds)
    back = pot.load_dataset(path)
    for name in ("numbers", "positions", "energies", "forces"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ds, name), err_msg=name)
    if ds.cells is None:
        assert back.cells is None
    else:
        np.testing.assert_array_equal(back.cells, ds.cells)
    assert back.info == ds.info
    assert not list(tmp_path.glob("*.tmp"))


def test_extxyz_readable_by_ase(tmp_path, cu):
    import ase.io

    path = pot.save_dataset(tmp_path / "cu.extxyz", cu)
    frames = ase.io.read(path, index=":")
    assert len(frames) == 4 and all(a.pbc.all() for a in frames)
    assert frames[2].get_potential_energy() == cu.energies[2]
    np.testing.assert_array_equal(frames[1].cell[:], cu.cells[1])
    assert json.loads(frames[0].info["diffsim_dataset"]) == cu.info


def test_info_with_quotes_round_trips(tmp_path, lj):
    info = {**lj.info, "note": 'a "quoted" \\ back\\slash, = and\nnewline'}
    ds = dataclasses.replace(lj, info=info)
    back = pot.load_dataset(pot.save_dataset(tmp_path / "q.extxyz", ds))
    assert back.info == info


def _toy(b=10, n=3, periodic=False):
    rng = np.random.default_rng(0)
    return pot.Dataset(
        numbers=np.array([8, 1, 1][:n]),
        positions=rng.normal(size=(b, n, 3)),
        energies=np.arange(b, dtype=float),
        forces=rng.normal(size=(b, n, 3)),
        cells=np.tile(np.eye(3) * 5.0, (b, 1, 1)) if periodic else None,
        info={"generator": "toy"},
    )


def test_split():
    ds = _toy(20)
    train, val, test = ds.split(10, 4, 5, seed=3)
    assert (len(train), len(val), len(test)) == (10, 4, 5)
    ids = [set(part.energies.astype(int)) for part in (train, val, test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    again = ds.split(10, 4, 5, seed=3)
    np.testing.assert_array_equal(again[0].energies, train.energies)
    assert not np.array_equal(ds.split(10, 4, 5, seed=4)[0].energies, train.energies)
    assert train.info == ds.info
    with pytest.raises(ValueError, match="exceeds the 20 frames"):
        ds.split(10, 10, 1, seed=0)
    with pytest.raises(ValueError, match="sizes"):
        ds.split(-1, 1, 1, seed=0)
    assert len(ds.split(0, 0, 20, seed=0)[0]) == 0


def test_subset_species_elements_atoms():
    ds = _toy(5, periodic=True)
    sub = ds.subset([4, 0])
    np.testing.assert_array_equal(sub.energies, [4.0, 0.0])
    assert ds.elements == (1, 8)
    np.testing.assert_array_equal(ds.species, [1, 0, 0])
    assert ds.formula == "H2O"
    atoms = ds.to_atoms(-1)
    assert atoms.get_potential_energy() == 4.0 and atoms.pbc.all()
    np.testing.assert_array_equal(atoms.get_forces(), ds.forces[4])
    assert isinstance(ds.space(1), md.PeriodicBox)
    with pytest.raises(IndexError):
        ds.to_atoms(5)
    with pytest.raises(ValueError, match="read-only"):
        ds.positions[0, 0, 0] = 1.0


@pytest.mark.parametrize(
    "change, match",
    [
        ({"positions": np.zeros((10, 3, 2))}, r"positions must have shape \(B, 3, 3\), got shape"),
        ({"energies": np.zeros(9)}, r"energies must have shape \(10,\), got shape \(9,\)"),
        ({"forces": np.zeros((10, 4, 3))}, r"forces .*got shape \(10, 4, 3\)"),
        ({"cells": np.zeros((10, 3))}, r"cells must have shape"),
        ({"cells": np.zeros((10, 3, 3))}, r"cells\[0\] is singular"),
        ({"numbers": np.array([8.0, 1.0, 1.0])}, "numbers must be integers"),
        ({"numbers": np.array([0, 1, 1])}, "atomic numbers"),
        ({"info": {"bad": object()}}, "JSON"),
    ],
)
def test_validation(change, match):
    fields = {f.name: getattr(_toy(), f.name) for f in dataclasses.fields(pot.Dataset)}
    with pytest.raises(ValueError, match=match):
        pot.Dataset(**{**fields, **change})


def test_nan_rejected():
    ds = _toy()
    forces = np.array(ds.forces)
    forces[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"forces \(shape \(10, 3, 3\)\) contains NaN"):
        dataclasses.replace(ds, forces=forces)


def test_file_errors(tmp_path):
    ds = _toy()
    with pytest.raises(FileNotFoundError, match="no such file"):
        pot.load_dataset(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="unsupported dataset suffix '.h5'"):
        pot.save_dataset(tmp_path / "d.h5", ds)
    with pytest.raises(ValueError, match="unsupported"):
        pot.load_dataset(tmp_path / "d.pkl")
    for name, text in [("bad.npz", "not a zip"), ("bad.extxyz", "3\nfoo\nH 0 0\n")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=str(tmp_path / name)):
            pot.load_dataset(tmp_path / name)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="missing arrays"):
        pot.load_dataset(tmp_path / "other.npz")
    # an extxyz without labels
    (tmp_path / "nolabel.extxyz").write_text(
        '1\nProperties=species:S:1:pos:R:3 pbc="F F F"\nH 0 0 0\n'
    )
    with pytest.raises(ValueError, match="no energy and forces"):
        pot.load_dataset(tmp_path / "nolabel.extxyz")


def test_cache_reuse_and_refusal(tmp_path):
    lines = []
    kw = dict(seed=0, cache_dir=tmp_path, equilibrate_steps=10, stride=2, log=lines.append)
    ds = pot.load_or_generate("lj_cluster", 3, **kw)
    path = pot.cache_path("lj_cluster", 3, seed=0, cache_dir=tmp_path)
    assert path == tmp_path / "lj_cluster_lj_3_seed0.extxyz" and path.exists()
    stamp = path.stat().st_mtime_ns
    again = pot.load_or_generate("lj_cluster", 3, **kw)
    assert path.stat().st_mtime_ns == stamp and "reusing" in lines[-1]
    np.testing.assert_array_equal(again.positions, ds.positions)
    with pytest.raises(FileExistsError, match="temperature_K: cached 30.0, requested 40.0"):
        pot.load_or_generate("lj_cluster", 3, **{**kw, "temperature_K": 40.0})
    assert path.stat().st_mtime_ns == stamp
    # an explicit path holding another system is refused too
    with pytest.raises(FileExistsError, match="different settings"):
        pot.load_or_generate("copper", 3, path=path, repeat=1)
    with pytest.raises(ValueError, match="unknown setting"):
        pot.load_or_generate("lj_cluster", 3, cache_dir=tmp_path, repeat=2)
    with pytest.raises(ValueError, match="unknown system"):
        pot.load_or_generate("water", 3, cache_dir=tmp_path)


def test_generator_argument_errors():
    with pytest.raises(ValueError, match="n_configs must be finite and > 0"):
        pot.generate_copper(0)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        pot.generate_lj_clusters(2, stride=0)
    with pytest.raises(ValueError, match="unknown molecule"):
        pot.generate_molecule("unobtainium", 2)
    with pytest.raises(ValueError, match="method"):
        pot.generate_molecule("ethanol", 2, method="PM7")


@pytest.mark.parametrize("name, formula", [("ethanol", "C2H6O"), ("malonaldehyde", "C3H4O2")])
def test_molecule_tblite(name, formula):
    from tblite.ase import TBLite

    ds = pot.generate_molecule(name, 3, equilibrate_steps=20, stride=5, seed=0)
    assert len(ds) == 3 and ds.formula == formula and ds.cells is None
    assert ds.min_distances().min() > 0.7
    assert ds.info["method"] == "GFN2-xTB" and ds.info["versions"]["tblite"] != "unknown"
    # a bonded molecule: every atom within 1.6 A of another
    d = np.linalg.norm(ds.positions[:, :, None] - ds.positions[:, None], axis=-1)
    d[:, np.arange(9), np.arange(9)] = np.inf
    assert d.min(axis=-1).max() < 1.6
    atoms = ds.to_atoms(1)
    # labels are a fresh tight SCF: a new calculator reproduces them
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0, accuracy=ds.info["settings"]["accuracy"])
    assert abs(atoms.get_potential_energy() - ds.energies[1]) < 1e-8
    np.testing.assert_allclose(atoms.get_forces(), ds.forces[1], atol=1e-6)


def test_experiment_small(tmp_path, monkeypatch):
    from diffsim.runner import find_experiment, load_config, run_experiment

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the experiment sets it if unset

    for name in ("potential_dataset", "potential_dataset_copper", "potential_dataset_lj"):
        exp, cfg = load_config(f"configs/{name}.toml")
        assert exp.name == "potential_dataset"
    exp = find_experiment("potential_dataset")
    cfg = dataclasses.replace(
        exp.config_cls(),
        system="copper",
        n_configs=2,
        stride=2,
        equilibrate_steps=10,
        output=str(tmp_path / "cache" / "cu.npz"),
        progress=False,
    )
    m, run_dir = run_experiment(exp, cfg, tmp_path / "run1", quiet=True)
    assert m["n_configs"] == 2 and m["n_atoms"] == 108 and not m["reused_cache"]
    assert m["seconds_per_label"] > 0 and m["min_distance_A"] > 2.0
    for name in ("energy_hist.png", "force_hist.png", "dataset.extxyz"):
        assert (run_dir / name).stat().st_size > 1_000
    m2, _ = run_experiment(exp, cfg, tmp_path / "run2", quiet=True)
    assert m2["reused_cache"] and m2["energy_mean_per_atom_eV"] == m["energy_mean_per_atom_eV"]
