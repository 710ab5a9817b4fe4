"""DNA encoding: IUPAC one-hot, reverse complement, windows, ragged batches, errors."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from diffsim import sequence as sq


def test_one_hot_plain_and_ambiguous():
    x = sq.one_hot("ACGTNRYSWKMBDHVu")
    assert x.shape == (16, 4)
    np.testing.assert_allclose(x.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(x[:4], np.eye(4))
    np.testing.assert_allclose(x[4], [0.25] * 4)  # N
    np.testing.assert_allclose(x[5], [0.5, 0, 0.5, 0])  # R = A/G
    np.testing.assert_allclose(x[6], [0, 0.5, 0, 0.5])  # Y = C/T
    np.testing.assert_allclose(x[12], [1 / 3, 0, 1 / 3, 1 / 3], rtol=1e-6)  # D = A/G/T
    np.testing.assert_array_equal(x[15], [0, 0, 0, 1])  # u = T
    np.testing.assert_array_equal(sq.one_hot("acgt"), np.eye(4))


@pytest.mark.parametrize("bad", ["ACGX", "AC-G", "AC G", "ACÉ"])
def test_one_hot_rejects_bad_characters(bad):
    with pytest.raises(ValueError, match="position"):
        sq.one_hot(bad)


def test_empty_inputs_are_errors():
    with pytest.raises(ValueError, match="empty"):
        sq.one_hot("")
    with pytest.raises(ValueError, match="empty"):
        sq.pad_batch([])
    with pytest.raises(ValueError, match="empty"):
        sq.pad_batch(["ACG", ""])
    with pytest.raises(ValueError, match="empty"):
        sq.reverse_complement("")


@settings(max_examples=30, deadline=None)
@given(st.text(alphabet="ACGTNRYSWKMBDHV", min_size=1, max_size=30))
def test_reverse_complement_string_and_array_agree(s):
    rc = sq.reverse_complement(s)
    np.testing.assert_allclose(sq.one_hot(rc), sq.reverse_complement(sq.one_hot(s)))
    assert sq.reverse_complement(rc) == s
    assert sq.decode(sq.one_hot(s)) == s


def test_reverse_complement_known():
    assert sq.reverse_complement("AACGTRN") == "NYACGTT"
    with pytest.raises(ValueError, match="IUPAC"):
        sq.reverse_complement("ACZ")


def test_windows_and_padding():
    x = sq.one_hot("ACGTACGTAC")
    w, m = sq.windows(x, 4)
    assert w.shape == (2, 4, 4) and m.all()
    w, m = sq.windows(x, 4, pad=True)
    assert w.shape == (3, 4, 4) and m[2].tolist() == [True, True, False, False]
    assert sq.decode(w[2][:2]) == "AC" and not w[2][2:].any()
    w, _ = sq.windows(x, 4, stride=2)
    assert w.shape == (4, 4, 4)
    with pytest.raises(ValueError, match="fewer than length"):
        sq.windows(x, 11)
    with pytest.raises(ValueError, match="stride"):
        sq.windows(x, 4, 0)


def test_pad_batch():
    b, m = sq.pad_batch(["ACG", "A", "ACGTT"])
    assert b.shape == (3, 5, 4)
    assert m.sum(1).tolist() == [3, 1, 5]
    assert not b[1, 1:].any()
    with pytest.raises(ValueError, match="length=4"):
        sq.pad_batch(["ACGTT"], length=4)
