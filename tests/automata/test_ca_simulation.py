"""Elementary and life-like simulation against known facts, and bit-packing against RollSum."""

import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import diffsim
from diffsim.automata import (
    BLINKER,
    BLOCK,
    DAY_AND_NIGHT,
    GLIDER,
    GOSPER_GUN,
    HIGHLIFE,
    LIFE,
    SEEDS,
    BitPacked,
    ElementaryRule,
    Fixed,
    LifeLikeRule,
    Periodic,
    RollSum,
    elementary_step,
    from_rle,
    life_step,
    pack_bits,
    packed_life_step,
    parse_rule,
    place,
    run_elementary,
    run_life,
    single_cell,
    unpack_bits,
)

# OEIS A051023, middle column of rule 30 from a lone 1 cell: terms 0..101 as listed there.
# fmt: off
A051023 = [
    1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 1, 1, 0, 1, 0, 1, 1,
    1, 0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1, 0,
    1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0,
    0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1,
]
# fmt: on


def _naive_elementary(number, row, steps, boundary):
    """Plain-Python reference: the rule applied cell by cell."""
    rows = [list(row)]
    w = len(row)
    for _ in range(steps):
        r = rows[-1]
        nxt = []
        for i in range(w):
            if boundary is None:
                left, right = r[(i - 1) % w], r[(i + 1) % w]
            else:
                left = r[i - 1] if i > 0 else boundary
                right = r[i + 1] if i < w - 1 else boundary
            nxt.append((number >> (4 * left + 2 * r[i] + right)) & 1)
        rows.append(nxt)
    return np.array(rows)


def test_rule30_centre_column_is_a051023():
    steps = len(A051023) - 1
    width = 2 * steps + 3  # the light cone never wraps
    rows = run_elementary(30, single_cell(width), steps)
    assert rows.shape == (steps + 1, width)
    np.testing.assert_array_equal(np.asarray(rows[:, width // 2]), A051023)


def test_rule90_is_pascal_mod_2():
    steps, width = 40, 101
    rows = np.asarray(run_elementary(90, single_cell(width), steps))
    c = width // 2
    for t in range(steps + 1):
        expect = np.zeros(width, int)
        for j in range(t + 1):
            expect[c - t + 2 * j] = math.comb(t, j) % 2
        np.testing.assert_array_equal(rows[t], expect, err_msg=f"row {t}")


@pytest.mark.parametrize("number", [30, 110, 184, 255])
@pytest.mark.parametrize("boundary", [None, 0, 1])
def test_elementary_matches_naive(number, boundary):
    row = np.random.default_rng(number).integers(0, 2, 23)
    b = Periodic() if boundary is None else Fixed(boundary)
    got = run_elementary(ElementaryRule(number), jnp.asarray(row), 12, boundary=b)
    np.testing.assert_array_equal(np.asarray(got), _naive_elementary(number, row, 12, boundary))


def test_all_256_rules_vmapped_over_tables():
    tables = jnp.stack([ElementaryRule(n).table for n in range(256)])
    row = jnp.asarray(np.random.default_rng(0).integers(0, 2, 17))
    out = jax.vmap(lambda t: run_elementary(t, row, 5))(tables)
    for n in (0, 77, 137, 254):
        np.testing.assert_array_equal(np.asarray(out[n]), _naive_elementary(n, list(row), 5, None))


def test_elementary_batch_axes():
    rows = jnp.asarray(np.random.default_rng(1).integers(0, 2, (3, 4, 16)))
    out = elementary_step(110, rows)
    np.testing.assert_array_equal(out[2, 1], elementary_step(110, rows[2, 1]))
    np.testing.assert_array_equal(out[0, 3], _naive_elementary(110, list(rows[0, 3]), 1, None)[1])


def test_glider_moves_one_diagonal_cell_every_four_steps():
    g = place(GLIDER, (12, 12), (1, 1))
    frames = np.asarray(run_life(LIFE, g, 16))
    for t in range(0, 16, 4):
        np.testing.assert_array_equal(frames[t + 4], np.roll(frames[t], (1, 1), axis=(0, 1)))
    assert all(not np.array_equal(frames[t], np.roll(g, (1, 1), (0, 1))) for t in (1, 2, 3))


def test_blinker_period_two_and_block_still():
    b = place(BLINKER, (8, 8), (3, 2))
    f = np.asarray(run_life("B3/S23", b, 4))
    assert not np.array_equal(f[1], f[0])
    np.testing.assert_array_equal(f[2], f[0])
    np.testing.assert_array_equal(f[4], f[0])
    k = place(BLOCK, (8, 8), (2, 2))
    np.testing.assert_array_equal(np.asarray(life_step(LIFE, k)), k)


def test_gosper_gun_emits_a_glider_every_30_steps():
    shape = (96, 96)
    frames = np.asarray(run_life(LIFE, place(GOSPER_GUN, shape, (1, 1)), 240, method=BitPacked()))
    box = np.zeros(shape, bool)
    box[:12, :39] = True  # the gun and its reaction region
    # The gun itself has period 30 once started.
    for t in (30, 90, 180):
        np.testing.assert_array_equal(frames[t][box], frames[t + 30][box])
    outside = [frames[t][~box].sum() for t in range(30, 241, 30)]
    assert np.all(np.diff(outside) == 5), outside  # one 5-cell glider per period
    # Everything that left the gun is gliders: 5-cell components moving (1, 1) in 4 steps.
    t = 200
    far = frames[t] * ~box
    labels, n = ndimage.label(far, structure=np.ones((3, 3)))
    assert n == (t - 30) // 30 + 1
    assert all((labels == i).sum() == 5 for i in range(1, n + 1))
    shifted = np.roll(far, (1, 1), axis=(0, 1))
    np.testing.assert_array_equal(frames[t + 4] * (shifted > 0), shifted)


@pytest.mark.parametrize(
    "rule", [LIFE, HIGHLIFE, SEEDS, DAY_AND_NIGHT, "B0/S8", "B1357/S1357", "B012345678/S"]
)
def test_bitpacked_equals_rollsum(rule, getkey):
    grid = jax.random.bernoulli(getkey(), 0.4, (2, 23, 64)).astype(jnp.uint8)
    a = run_life(rule, grid, 12, method=RollSum())
    # Two generations per loop iteration (the gun below runs the default 8, and the
    # compile-once test below runs 7 steps at 2 per iteration: one left over).
    b = run_life(rule, grid, 12, method=BitPacked(unroll=2))
    assert a.shape == b.shape == (13, 2, 23, 64)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a[1]), np.asarray(a[0]))  # the rule did something


def test_bitpacked_single_word_rows_and_the_contiguous_layout(getkey):
    # One word per row (W = 32): the halo word is the row's own word, rotated; odd H.
    grid = jax.random.bernoulli(getkey(), 0.45, (7, 32)).astype(jnp.int32)
    want = np.asarray(run_life(LIFE, grid, 3))
    got = run_life(LIFE, grid, 3, method=BitPacked(unroll=1), frames=False)
    np.testing.assert_array_equal(np.asarray(got), want[-1])
    assert not np.array_equal(want[-1], want[0])
    step = packed_life_step(LIFE, pack_bits(grid))  # the contiguous-word layout
    np.testing.assert_array_equal(np.asarray(unpack_bits(step)), want[1])
    with pytest.raises(ValueError, match="unroll"):
        BitPacked(unroll=0)
    with pytest.raises(ValueError, match="multiple of 32"):
        run_life(LIFE, jnp.zeros((4, 48), jnp.int32), 2, method=BitPacked())


def test_rule_circuits_equal_the_rule_tables():
    """The Boolean circuit built for a rule gives its table at every (cell, count): all
    rules with one birth and one survival count, and 19 random ones (no compilation)."""
    from diffsim.automata._simulate import _emit, _rule_circuit

    cell, n = np.divmod(np.arange(18), 9)
    env = {"x": cell.astype(np.uint32)}
    env |= {f"n{i}": ((n >> i) & 1).astype(np.uint32) for i in range(4)}
    env = {k: np.where(v, np.uint32(0xFFFFFFFF), np.uint32(0)) for k, v in env.items()}
    rng = np.random.default_rng(0)
    rules = [LifeLikeRule((b,), (s,)) for b in range(9) for s in range(9)]
    rules += [LifeLikeRule(*(np.flatnonzero(rng.random(9) < 0.5) for _ in "bs")) for _ in range(19)]
    for rule in rules:
        out = np.asarray(_emit(_rule_circuit(rule), env)) & 1
        np.testing.assert_array_equal(out, rule.numpy_table()[cell, n], err_msg=str(rule))


def test_rollsum_matches_scipy_convolution(getkey):
    from scipy.signal import convolve2d

    grid = np.asarray(jax.random.bernoulli(getkey(), 0.5, (20, 30)).astype(jnp.int32))
    kernel = np.ones((3, 3), int)
    kernel[1, 1] = 0
    for rule in (LIFE, DAY_AND_NIGHT):
        n = convolve2d(grid, kernel, mode="same", boundary="wrap")
        expect = np.asarray(rule.table)[grid, n]
        np.testing.assert_array_equal(np.asarray(life_step(rule, grid)), expect)


def test_pack_unpack_roundtrip(getkey):
    grid = jax.random.bernoulli(getkey(), 0.5, (3, 5, 96)).astype(jnp.uint8)
    words = pack_bits(grid)
    assert words.shape == (3, 5, 3) and words.dtype == jnp.uint32
    np.testing.assert_array_equal(np.asarray(unpack_bits(words)), np.asarray(grid))


def test_run_life_final_only_and_compiles_once(getkey, caplog):
    grid = jax.random.bernoulli(getkey(), 0.5, (32, 32)).astype(jnp.int32)
    frames = run_life(LIFE, grid, 7)

    def compilations():
        return sum("Compiling jit(_run_life)" in rec.getMessage() for rec in caplog.records)

    with caplog.at_level(logging.WARNING), jax.log_compiles():
        final = run_life(LIFE, grid, 7, frames=False, method=BitPacked(unroll=2))
        assert compilations() == 1  # a new method and output: one compilation
        # New grids of the same shape and dtype, and an equal rule and method: no more.
        for _ in range(3):
            other = jax.random.bernoulli(getkey(), 0.5, (32, 32)).astype(jnp.int32)
            run_life(LIFE, other, 7, frames=False, method=BitPacked(unroll=2))
        assert compilations() == 1
        run_life(LIFE, grid, 8, frames=False, method=BitPacked(unroll=2))  # steps is static
        assert compilations() == 2
    np.testing.assert_array_equal(np.asarray(frames[-1]), np.asarray(final))
    assert final.dtype == grid.dtype


def test_rollout_is_the_simulator():
    g = jnp.asarray(place(GLIDER, (10, 10), (0, 0)))
    final, _ = diffsim.rollout(lambda s, _: (life_step(LIFE, s), None), g, length=8)
    np.testing.assert_array_equal(np.asarray(final), np.roll(np.asarray(g), (2, 2), (0, 1)))


@pytest.mark.parametrize(
    "text,birth,survive",
    [
        ("B3/S23", (3,), (2, 3)),
        ("b36/s23", (3, 6), (2, 3)),
        ("B2/S", (2,), ()),
        ("B3678/S34678", (3, 6, 7, 8), (3, 4, 6, 7, 8)),
        ("23/3", (3,), (2, 3)),
        ("B/S", (), ()),
    ],
)
def test_parse_and_print(text, birth, survive):
    rule = parse_rule(text)
    assert rule.birth == birth and rule.survive == survive
    assert parse_rule(str(rule)) == rule
    assert str(rule).startswith("B") and "/S" in str(rule)


@pytest.mark.parametrize("bad", ["B9/S23", "B3S23", "life", "B3/S2a", "B33/S23", "", "B3/S23/x"])
def test_malformed_rule_string_is_rejected(bad):
    with pytest.raises(ValueError, match="parse_rule"):
        parse_rule(bad)


@pytest.mark.parametrize("bad", [-1, 256, 3.5, "30", True])
def test_bad_rule_number_is_rejected(bad, unchecked):
    with pytest.raises(ValueError, match="ElementaryRule"):
        ElementaryRule(bad)


def test_other_bad_inputs(unchecked):
    with pytest.raises(ValueError, match="birth"):
        LifeLikeRule((9,), ())
    with pytest.raises(ValueError, match="Fixed"):
        Fixed(2)
    with pytest.raises(ValueError, match="multiple of 32"):
        pack_bits(jnp.zeros((4, 30)))
    with pytest.raises(ValueError, match="steps"):
        run_life(LIFE, jnp.zeros((4, 4)), -1)
    with pytest.raises(ValueError, match="parse_rule"):
        run_life("B3/S2x", jnp.zeros((4, 4)), 1)
    with pytest.raises(ValueError, match="shape"):
        elementary_step(jnp.zeros(7), jnp.zeros(5))


def test_rle_reader():
    g = from_rle("#C glider\nx = 3, y = 3, rule = B3/S23\nbo$2bo$3o!")
    np.testing.assert_array_equal(g, GLIDER)
    assert from_rle("o2$o!").shape == (3, 1)
    with pytest.raises(ValueError, match="from_rle"):
        from_rle("b%o!")


@pytest.mark.parametrize("value", [2, -1, 0.5])
def test_cell_values_outside_0_1_are_refused(value):
    from diffsim.automata import elementary_step, life_step, run_elementary, run_life

    row = jnp.array([0, 1, value, 0])
    grid = jnp.zeros((4, 4)).at[1, 2].set(value)
    with pytest.raises(ValueError, match="elementary_step: cells must hold only 0 and 1"):
        elementary_step(30, row)
    with pytest.raises(ValueError, match="run_elementary: cells"):
        run_elementary(30, row, 3)
    with pytest.raises(ValueError, match="life_step: grid must hold only 0 and 1"):
        life_step("B3/S23", grid)
    with pytest.raises(ValueError, match="run_life: grid"):
        run_life("B3/S23", grid, 2)
