"""Potentials: forces = -grad(energy) against finite differences, ASE and JAX MD;
invariances; species tables; stress; bad input."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.calculators.lj import LennardJones as AseLJ

import diffsim.molecular as md

AR_SIGMA, AR_EPS = 3.405, 0.0103  # Angstrom, eV


def ar_cluster(n=38, seed=0):
    """Random compact Ar cluster with no pair closer than 0.95 sigma."""
    rng = np.random.default_rng(seed)
    pts = []
    while len(pts) < n:
        p = rng.uniform(-1, 1, 3) * 1.4 * AR_SIGMA * n ** (1 / 3) / 2
        if all(np.linalg.norm(p - q) > 0.95 * AR_SIGMA for q in pts):
            pts.append(p)
    return jnp.asarray(np.array(pts))


def fluid(n=108, density=0.8, noise=0.1, seed=0):
    r, box = md.lattice(n, density)
    rng = np.random.default_rng(seed)
    return r + jnp.asarray(rng.normal(scale=noise, size=r.shape)), box


def vg(energy, *args):
    """Jitted (energy, gradient): eager op-by-op evaluation is many times slower."""
    return jax.jit(jax.value_and_grad(lambda r, *a: energy(r, *a)))(*args)


def jit_e(energy):
    return jax.jit(lambda r, *a, **k: energy(r, *a, **k))


def fd_check(energy, r, n_dirs=3, h=1e-6, rtol=1e-6, seed=0):
    """Central differences of E along random directions against grad(E) . d."""
    e = jit_e(energy)
    g = vg(energy, r)[1]
    rng = np.random.default_rng(seed)
    for _ in range(n_dirs):
        d = jnp.asarray(rng.normal(size=r.shape))
        fd = (e(r + h * d) - e(r - h * d)) / (2 * h)
        np.testing.assert_allclose(fd, jnp.sum(g * d), rtol=rtol)
    return g


def ase_lj(positions, space, cutoff, sigma=1.0, epsilon=1.0):
    atoms = md.to_atoms(positions, space=space)
    if isinstance(cutoff, md.Switched):
        atoms.calc = AseLJ(
            sigma=sigma, epsilon=epsilon, smooth=True, ro=cutoff.onset, rc=cutoff.cutoff
        )
    else:
        atoms.calc = AseLJ(sigma=sigma, epsilon=epsilon, rc=cutoff.cutoff)
    return atoms


CUTOFFS = {
    "switched": lambda s: md.Switched(2.0 * s, 2.5 * s),
    "shifted": lambda s: md.Shifted(2.5 * s),
}


@pytest.mark.parametrize("cut", sorted(CUTOFFS))
def test_lj_matches_ase_ar_cluster(cut):
    r = ar_cluster()
    cutoff = CUTOFFS[cut](AR_SIGMA)
    energy = md.lennard_jones(md.FreeSpace(), sigma=AR_SIGMA, epsilon=AR_EPS, cutoff=cutoff)
    atoms = ase_lj(r, md.FreeSpace(), cutoff, AR_SIGMA, AR_EPS)
    e, g = vg(energy, r)
    np.testing.assert_allclose(e, atoms.get_potential_energy(), rtol=1e-12)
    np.testing.assert_allclose(-g, atoms.get_forces(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("cut", sorted(CUTOFFS))
def test_lj_matches_ase_periodic_fluid(cut):
    r, box = fluid(108)
    cutoff = CUTOFFS[cut](1.0)
    energy = md.lennard_jones(box, cutoff=cutoff)
    atoms = ase_lj(r, box, cutoff)
    e, g = vg(energy, r)
    np.testing.assert_allclose(e, atoms.get_potential_energy(), rtol=1e-12)
    np.testing.assert_allclose(-g, atoms.get_forces(), rtol=1e-9, atol=1e-10)
    # Stress from the strain derivative against ASE's pair virial.
    s = md.stress(energy, r, box)
    np.testing.assert_allclose(s, atoms.get_stress(voigt=False), rtol=1e-9, atol=1e-11)


def test_lj_matches_ase_triclinic():
    r, box = fluid(256, density=0.7)
    L = float(box.lengths[0])
    cell = jnp.array([[L, 0, 0], [0.3 * L, L, 0], [0.2 * L, -0.25 * L, L]])
    # Same atoms, re-expressed in the skewed cell (wrapping keeps them inside it).
    space = md.TriclinicBox(cell)
    r = space.wrap(r)
    cutoff = md.Switched(2.0, 2.5)
    energy = md.lennard_jones(space, cutoff=cutoff)
    atoms = ase_lj(r, space, cutoff)
    e, g = vg(energy, r)
    np.testing.assert_allclose(e, atoms.get_potential_energy(), rtol=1e-12)
    np.testing.assert_allclose(-g, atoms.get_forces(), rtol=1e-9, atol=1e-10)
    nbrs = md.neighbor_list(r, space, 2.5, skin=0.2)
    np.testing.assert_allclose(jit_e(energy)(r, nbrs), e, rtol=1e-12)
    np.testing.assert_allclose(
        md.stress(energy, r, space), atoms.get_stress(voigt=False), atol=1e-10
    )


@pytest.mark.slow  # importing jax_md alone takes ~8 s of CPU
def test_lj_matches_jax_md():
    import jax_md as jmd  # here, not at the top: importing it takes seconds

    # Ar cluster in free space (JAX MD's cutoffs are in units of sigma).
    r = ar_cluster(20)
    disp, _ = jmd.space.free()
    ref = jmd.energy.lennard_jones_pair(
        disp, sigma=AR_SIGMA, epsilon=AR_EPS, r_onset=2.0, r_cutoff=2.5
    )
    mine = md.lennard_jones(
        md.FreeSpace(), sigma=AR_SIGMA, epsilon=AR_EPS, cutoff=CUTOFFS["switched"](AR_SIGMA)
    )
    # JAX MD rounds its cutoff radii to float32 (maybe_downcast), hence 1e-6, not 1e-12.
    e, g = vg(mine, r)
    e_ref, g_ref = jax.jit(jax.value_and_grad(ref))(r)
    np.testing.assert_allclose(e, e_ref, rtol=1e-6)
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-8)
    # Periodic fluid with neighbour lists on both sides.
    r, box = fluid(500)
    L = float(box.lengths[0])
    disp, _ = jmd.space.periodic(L)
    nfn, efn = jmd.energy.lennard_jones_neighbor_list(disp, L, r_onset=2.0, r_cutoff=2.5)
    jn = nfn.allocate(r)
    mine = md.lennard_jones(box, cutoff=md.Switched(2.0, 2.5))
    nbrs = md.neighbor_list(r, box, 2.5)
    e, g = vg(mine, r, nbrs)
    e_ref, g_ref = jax.jit(jax.value_and_grad(efn))(r, jn)
    np.testing.assert_allclose(e, e_ref, rtol=1e-6)
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda s: md.lennard_jones(s, cutoff=md.Switched(2.0, 2.5)),
        lambda s: md.lennard_jones(s, cutoff=md.Shifted(2.5)),
        lambda s: md.morse(s, sigma=1.1, epsilon=1.0, alpha=3.0),
        lambda s: md.soft_sphere(s, sigma=1.2, epsilon=2.0, alpha=2.5),
    ],
    ids=["lj_switched", "lj_shifted", "morse", "soft_sphere"],
)
def test_forces_finite_differences(make):
    r, box = fluid(108, noise=0.15)
    energy = make(box)
    f = -fd_check(energy, r)
    energy = jit_e(energy)
    # Central differences of E along single coordinates against the force entries.
    h = 1e-5
    for a, k in [(0, 0), (17, 1), (63, 2), (107, 0)]:
        e_plus = energy(r.at[a, k].add(h))
        e_minus = energy(r.at[a, k].add(-h))
        np.testing.assert_allclose(-(e_plus - e_minus) / (2 * h), f[a, k], rtol=1e-6, atol=1e-7)


def _numpy_pair_loop(r, L, u_du, cutoff=None):
    """Energy and forces by a plain double loop over pairs in numpy (minimum image in a
    cubic box of side L); `u_du(r) -> (u, du/dr)`; `cutoff = (onset, rc)` applies the
    HOOMD-blue switching function."""
    r = np.asarray(r, np.float64)
    n = len(r)
    energy, forces = 0.0, np.zeros_like(r)
    for i in range(n):
        for j in range(i + 1, n):
            d = r[i] - r[j]
            d -= L * np.round(d / L)
            x = float(np.sqrt(d @ d))
            u, du = u_du(x)
            if cutoff is not None:
                ro, rc = cutoff
                if x >= rc:
                    continue
                if x > ro:
                    den = (rc**2 - ro**2) ** 3
                    s = (rc**2 - x**2) ** 2 * (rc**2 + 2 * x**2 - 3 * ro**2) / den
                    ds = 12 * x * (rc**2 - x**2) * (ro**2 - x**2) / den
                    u, du = u * s, du * s + u * ds
            energy += u
            forces[i] -= du * d / x
            forces[j] += du * d / x
    return energy, forces


def test_morse_and_soft_sphere_match_a_numpy_pair_loop():
    """Energies and forces of `morse` (switched) and `soft_sphere` against a plain loop."""
    r, box = fluid(108, noise=0.15)
    L = float(box.lengths[0])
    sg, ep, al = 1.1, 1.0, 3.0

    def morse(x):
        e = np.exp(-al * (x - sg))
        return ep * (1 - e) ** 2 - ep, 2 * ep * al * (1 - e) * e

    e_ref, f_ref = _numpy_pair_loop(r, L, morse, cutoff=(1.5, 2.0))  # morse's default cutoff
    e, g = vg(md.morse(box, sigma=sg, epsilon=ep, alpha=al), r)
    np.testing.assert_allclose(e, e_ref, rtol=1e-12)
    np.testing.assert_allclose(-g, f_ref, rtol=1e-10, atol=1e-12 * np.abs(f_ref).max())
    sg, ep, al = 1.2, 2.0, 2.5

    def soft(x):
        if x >= sg:
            return 0.0, 0.0
        return ep / al * (1 - x / sg) ** al, -ep / sg * (1 - x / sg) ** (al - 1)

    e_ref, f_ref = _numpy_pair_loop(r, L, soft)
    assert e_ref > 0 and np.abs(f_ref).max() > 0.1  # overlapping spheres at this density
    e, g = vg(md.soft_sphere(box, sigma=sg, epsilon=ep, alpha=al), r)
    np.testing.assert_allclose(e, e_ref, rtol=1e-12)
    np.testing.assert_allclose(-g, f_ref, rtol=1e-10, atol=1e-12 * np.abs(f_ref).max())


def test_bonded_finite_differences_and_values():
    space = md.FreeSpace()
    r = jnp.array([[0.0, 0.0, 0.0], [1.1, 0.1, 0.0], [1.5, 1.0, 0.2], [2.6, 1.2, -0.3]])
    bonds = md.HarmonicBonds(jnp.array([[0, 1], [1, 2], [2, 3]]), 50.0, 1.0, space)
    angles = md.HarmonicAngles(jnp.array([[0, 1, 2], [1, 2, 3]]), 10.0, 1.9, space)
    energy = bonds + angles
    fd_check(energy, r)
    d01 = np.linalg.norm(r[1] - r[0])
    a = np.asarray(r[0] - r[1])
    b = np.asarray(r[2] - r[1])
    theta = np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    np.testing.assert_allclose(
        md.HarmonicBonds(jnp.array([[0, 1]]), 50.0, 1.0, space)(r), 25 * (d01 - 1) ** 2
    )
    np.testing.assert_allclose(
        md.HarmonicAngles(jnp.array([[0, 1, 2]]), 10.0, 1.9, space)(r), 5 * (theta - 1.9) ** 2
    )


def test_parameter_gradient_and_hessian():
    r, box = fluid(108)
    energy = md.lennard_jones(box)
    g = jax.jit(jax.grad(lambda s: energy(r, sigma=s)))(1.0)
    h = 1e-6
    e_sigma = jax.jit(lambda s: energy(r, sigma=s))
    fd = (e_sigma(1.0 + h) - e_sigma(1.0 - h)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    small = r[:8] * 0.5
    e_free = md.lennard_jones(md.FreeSpace())
    H = jax.jit(jax.hessian(e_free))(small).reshape(24, 24)
    np.testing.assert_allclose(H, H.T, atol=1e-9)
    # Rigid translations are zero modes of the Hessian.
    for k in range(3):
        t = jnp.zeros((8, 3)).at[:, k].set(1.0).reshape(24)
        np.testing.assert_allclose(H @ t, 0.0, atol=1e-8 * float(jnp.abs(H).max()))


def test_invariances():
    r = ar_cluster(30)
    energy = md.lennard_jones(
        md.FreeSpace(), sigma=AR_SIGMA, epsilon=AR_EPS, cutoff=md.Switched(6.8, 8.5)
    )
    e, f = vg(energy, r)
    f = -f
    f_of = jax.jit(lambda r: -jax.grad(energy)(r))
    energy = jit_e(energy)
    np.testing.assert_allclose(f.sum(0), 0.0, atol=1e-12)
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = jnp.asarray(q)
    np.testing.assert_allclose(energy(r @ rot.T), e, rtol=1e-12)
    np.testing.assert_allclose(f_of(r @ rot.T), f @ rot.T, atol=1e-12)
    np.testing.assert_allclose(energy(r + jnp.array([[3.0, -7.0, 1.5]])), e, rtol=1e-12)
    perm = rng.permutation(r.shape[0])
    np.testing.assert_allclose(energy(r[perm]), e, rtol=1e-12)
    np.testing.assert_allclose(f_of(r[perm]), f[perm], atol=1e-12)
    # Periodic: translation by any vector (wrapping) and zero net force.
    r, box = fluid(108)
    e, g = vg(md.lennard_jones(box), r)
    shifted = box.wrap(r + jnp.array([[2.3, -11.0, 0.7]]))
    np.testing.assert_allclose(vg(md.lennard_jones(box), shifted)[0], e, rtol=1e-11)
    np.testing.assert_allclose(g.sum(0), 0.0, atol=1e-10)


def test_species_tables():
    r, box = fluid(108)
    species = jnp.asarray(np.arange(108) % 2)
    sigma = jnp.array([[1.0, 1.1], [1.1, 1.25]])
    eps = jnp.array([[1.0, 0.7], [0.7, 1.4]])
    cut = md.Shifted(2.5)
    energy = md.lennard_jones(box, sigma=sigma, epsilon=eps, cutoff=cut, species=species)
    # Direct double loop in numpy.
    rn, L, s = np.asarray(r), float(box.lengths[0]), np.asarray(species)
    total = 0.0
    for i, j in itertools.combinations(range(108), 2):
        d = rn[i] - rn[j]
        d -= L * np.round(d / L)
        rr = np.linalg.norm(d)
        if rr < 2.5:
            sg, ep = float(sigma[s[i], s[j]]), float(eps[s[i], s[j]])

            def u(x, sg=sg, ep=ep):
                return 4 * ep * ((sg / x) ** 12 - (sg / x) ** 6)

            total += u(rr) - u(2.5)
    np.testing.assert_allclose(jit_e(energy)(r), total, rtol=1e-12)
    # Permuting atoms together with their species leaves the energy unchanged.
    perm = np.random.default_rng(0).permutation(108)
    e_perm = md.lennard_jones(box, sigma=sigma, epsilon=eps, cutoff=cut, species=species[perm])
    np.testing.assert_allclose(jit_e(e_perm)(r[perm]), total, rtol=1e-12)


def test_pressure_is_volume_derivative():
    r, box = fluid(108)
    energy = md.lennard_jones(box)
    L = box.lengths[0]

    def e_of_volume(v):
        scale = (v / L**3) ** (1 / 3)
        return energy(r * scale, space=md.PeriodicBox(box.lengths * scale))

    p = md.pressure(energy, r, box)
    np.testing.assert_allclose(p, -jax.jit(jax.grad(e_of_volume))(L**3), rtol=1e-10)
    v = md.random_velocities(108, 3, 1.2, key=jax.random.key(0))
    p_kin = md.pressure(energy, r, box, velocities=v)
    np.testing.assert_allclose(p_kin - p, 108 * 1.2 / L**3, rtol=1e-10)


def test_bad_input_errors():
    r, box = fluid(108)
    with pytest.raises(ValueError, match="box too small"):
        md.lennard_jones(md.PeriodicBox.cube(4.0), cutoff=md.Shifted(2.5))
    with pytest.raises(ValueError, match="species has shape"):
        md.lennard_jones(box, species=jnp.zeros(50, jnp.int32))(r)
    with pytest.raises(ValueError, match="species must lie in"):
        md.lennard_jones(box, sigma=jnp.ones((2, 2)), species=jnp.full(108, 2))
    with pytest.raises(ValueError, match="disagree on the number of species"):
        md.lennard_jones(box, sigma=jnp.ones((2, 2)), epsilon=jnp.ones((3, 3)), species=None)
    with pytest.raises(ValueError, match="unknown parameters"):
        md.lennard_jones(box)(r, sigmas=1.0)
    with pytest.raises(ValueError, match="NaN"):
        md.check_positions(r.at[3, 1].set(jnp.nan), box)
    with pytest.raises(ValueError, match="overlapping atoms"):
        md.check_positions(r.at[1].set(r[0] + 0.01), box)
    with pytest.raises(ValueError, match="species has shape"):
        md.check_positions(r, box, species=jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match="onset < cutoff"):
        md.Switched(2.5, 2.0)
    with pytest.raises(ValueError, match="lengths must be finite and > 0"):
        md.PeriodicBox(jnp.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="positions must have shape"):
        md.lennard_jones(box)(r[:, :2].reshape(-1))
